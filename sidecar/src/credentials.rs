//! The sidecar's own credentials in its environment, and which process it starts may inherit
//! them: the one place that lists them.
//!
//! - [`VAULT_VARS`] (`VAULT_TOKEN`, `VAULT_SECRET_ID`): the sidecar's Vault login. No process
//!   it starts gets them: not exec's child ([`for_child`]), not an `on_change` action nor the
//!   `systemctl` it asks for a unit's main process ([`for_action`]). exec mode also removes
//!   them from its own environment (`supervise::protect`).
//! - [`AWS_VARS`]: AWS credential values (static keys, session token, the container
//!   credential endpoint's authorization token). exec's child keeps them, as documented
//!   (`docs/security.md`: on ECS the application holds the same task role anyway, and the SDK in
//!   the sidecar re-reads them at each refresh). A run-mode action (a reload hook) has no use for
//!   the sidecar's AWS identity: [`for_action`] removes them too.
//!
//! Limits: variables that only point at credentials (`AWS_PROFILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, `AWS_WEB_IDENTITY_TOKEN_FILE`,
//! `AWS_CONTAINER_CREDENTIALS_*_URI`) are kept: they hold no secret, and a process of the same
//! user can read what they point at anyway.

/// The sidecar's Vault credentials: given to no process it starts.
pub const VAULT_VARS: &[&str] = &["VAULT_TOKEN", "VAULT_SECRET_ID"];

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
        assert_eq!(child, ["VAULT_TOKEN", "VAULT_SECRET_ID"]);
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
