//! One module per subcommand.

pub(crate) mod init;
pub(crate) mod plan;
pub(crate) mod schema;
