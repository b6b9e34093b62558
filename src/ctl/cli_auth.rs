//! The command line of etcdctl 3.4's `auth`, `user` and `role` commands (clap derive types;
//! arguments are checked by the commands, so the errors are etcdctl's).

use clap::{ArgAction, Subcommand};

/// `auth` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enables authentication
    Enable {
        /// (none)
        args: Vec<String>,
    },
    /// Disables authentication
    Disable {
        /// (none)
        args: Vec<String>,
    },
}

/// `user` subcommands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Adds a new user
    Add {
        /// <user name or user:password>
        args: Vec<String>,
        /// Read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "true", action = ArgAction::Set)]
        interactive: bool,
        /// Supply password from the command line flag
        #[arg(long = "new-user-password", default_value = "")]
        new_user_password: String,
        /// Create a user without password (CN based auth only)
        #[arg(long = "no-password", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
        no_password: bool,
    },
    /// Deletes a user
    Delete {
        /// <user name>
        args: Vec<String>,
    },
    /// Gets detailed information of a user
    Get {
        /// <user name>
        args: Vec<String>,
        /// Show permissions of roles granted to the user
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        detail: bool,
    },
    /// Lists all users
    List {
        /// (none)
        args: Vec<String>,
    },
    /// Changes password of user
    Passwd {
        /// <user name>
        args: Vec<String>,
        /// If true, read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "true", action = ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user
    #[command(name = "grant-role")]
    GrantRole {
        /// <user name> <role name>
        args: Vec<String>,
    },
    /// Revokes a role from a user
    #[command(name = "revoke-role")]
    RevokeRole {
        /// <user name> <role name>
        args: Vec<String>,
    },
}

/// `role` subcommands.
#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Adds a new role
    Add {
        /// <role name>
        args: Vec<String>,
    },
    /// Deletes a role
    Delete {
        /// <role name>
        args: Vec<String>,
    },
    /// Gets detailed information of a role
    Get {
        /// <role name>
        args: Vec<String>,
    },
    /// Lists all roles
    List {
        /// (none)
        args: Vec<String>,
    },
    /// Grants a key to a role
    #[command(name = "grant-permission")]
    GrantPermission {
        /// <role name> <permission type> <key> [endkey]
        args: Vec<String>,
        /// grant a prefix permission
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        prefix: bool,
        /// grant a permission of keys that are greater than or equal to the given key using
        /// byte compare
        #[arg(long = "from-key", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
        from_key: bool,
    },
    /// Revokes a key from a role
    #[command(name = "revoke-permission")]
    RevokePermission {
        /// <role name> <key> [endkey]
        args: Vec<String>,
        /// revoke a prefix permission
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        prefix: bool,
        /// revoke a permission of keys that are greater than or equal to the given key using
        /// byte compare
        #[arg(long = "from-key", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
        from_key: bool,
    },
}
