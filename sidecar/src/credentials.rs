//! The sidecar's own credentials in its environment, and which process it starts may inherit
//! them: the one place that lists them.
//!
//! - [`VAULT_VARS`]: the sidecar's Vault login, and where it reads it from (`VAULT_TOKEN`,
//!   `VAULT_SECRET_ID`, the files `VAULT_TOKEN_FILE` and `VAULT_SECRET_ID_FILE` name, and the
//!   AppRole's `VAULT_ROLE_ID`, the other half of that login). No process it starts gets them:
//!   not exec's child ([`for_child`]), not an `on_change` action nor the `systemctl` it asks for
//!   a unit's main process ([`for_action`]). exec mode also removes them from its own
//!   environment (`supervise::protect`), after the configuration was read from it.
//! - [`AWS_VARS`]: AWS credential values (static keys, session token, the container
//!   credential endpoint's authorization token). exec's child keeps them, as documented
//!   (`docs/security.md`: on ECS the application holds the same task role anyway, and the SDK in
//!   the sidecar re-reads them at each refresh). A run-mode action (a reload hook) has no use for
//!   the sidecar's AWS identity: [`for_action`] removes them too.
//!
//! Limits: removing a variable that names a file does not keep a process of the same user
//! from reading that file (docs/security.md says so); AWS variables that only point at
//! credentials (`AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_WEB_IDENTITY_TOKEN_FILE`,
//! `AWS_CONTAINER_CREDENTIALS_*_URI`) are kept for both: the sidecar's AWS SDK reads them from
//! its own environment again at each refresh.

/// The sidecar's Vault credentials, and the variables naming the files it reads them from:
/// given to no process it starts.
pub const VAULT_VARS: &[&str] = &[
    "VAULT_TOKEN",
    "VAULT_SECRET_ID",
    "VAULT_TOKEN_FILE",
    "VAULT_SECRET_ID_FILE",
    "VAULT_ROLE_ID",
];

/// AWS credential values: kept for exec's child, removed for run mode's actions.
pub const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// Variables removed from the environment of exec mode's child.
pub fn for_child() -> impl Iterator<Item = &'static str> {
    VAULT_VARS.iter().copied()
}

/// Variables removed from the environment of a run-mode `on_change` action (a command, or the
/// `systemctl` that finds a unit's main process).
pub fn for_action() -> impl Iterator<Item = &'static str> {
    VAULT_VARS.iter().chain(AWS_VARS).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// exec's child keeps the AWS credentials (documented); actions get neither kind.
    #[test]
    fn actions_lose_vault_and_aws_credentials_the_exec_child_only_vault_ones() {
        let child: Vec<_> = for_child().collect();
        let action: Vec<_> = for_action().collect();
        assert_eq!(
            child,
            [
                "VAULT_TOKEN",
                "VAULT_SECRET_ID",
                "VAULT_TOKEN_FILE",
                "VAULT_SECRET_ID_FILE",
                "VAULT_ROLE_ID"
            ]
        );
        for var in [
            "VAULT_TOKEN",
            "VAULT_SECRET_ID",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            assert!(action.contains(&var), "{var}");
        }
    }
}
