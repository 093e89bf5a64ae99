//! One module per subcommand.

pub(crate) mod demo;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod locks;
pub(crate) mod plan;
pub(crate) mod plugins;
pub(crate) mod pool;
pub(crate) mod run;
pub(crate) mod schema;
