//! Built-in agents (the `command` agent) and the dynamic plugin loader.
