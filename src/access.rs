//! Who may fetch which role from the credentials endpoint: the tokens, and the roles each one
//! opens. Without `clients`, one token opens every role; with them, each client's token opens
//! its own roles only. Issued at start, kept for a client through reloads that keep it.

use std::sync::RwLock;

use crate::config::{ClientConfig, ClientName, RoleName};
use crate::credentials::Secret;

/// A new random token: 32 bytes from the operating system's generator, hex encoded (256 bits).
pub fn new_token() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Whether a request carries the token, compared by [`Secret::matches`] in time that does not
/// depend on where they differ, so the token cannot be guessed byte by byte.
pub fn token_matches(expected: &Secret, given: Option<&str>) -> bool {
    given.is_some_and(|given| expected.matches(given.as_bytes()).into())
}

/// One token and what it opens.
#[derive(Clone, Debug)]
struct Grant {
    /// The client it was issued to; none for the one token of a configuration without clients.
    client: Option<ClientName>,
    token: Secret,
    /// The roles it opens; none: every role.
    roles: Option<Vec<RoleName>>,
}

/// What a request's token allows for the role it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No token, or one that was not issued: 401.
    Unknown,
    /// A client's token asking for a role that is not the client's: 403.
    Forbidden(ClientName),
    /// Allowed; the client, when there are clients.
    Allowed(Option<ClientName>),
}

/// The tokens issued, as a token file each: the client whose directory it goes to (none: the
/// top level) and the token.
pub type Issued = Vec<(Option<ClientName>, Secret)>;

/// The tokens in force; read by every endpoint request, replaced by a reload.
#[derive(Debug, Default)]
pub struct Access {
    grants: RwLock<Vec<Grant>>,
}

impl Access {
    /// No token at all: every request is refused until [`Access::issue`].
    pub fn new() -> Access {
        Access::default()
    }

    /// Issues the tokens for `clients` (one for every role when there are none): a client that
    /// had a token keeps it, a new client gets a new one. Returns every token, to be written.
    pub fn issue(&self, clients: &[ClientConfig]) -> Issued {
        let mut grants = self.grants.write().expect("access lock poisoned");
        let keep = |client: Option<&ClientName>| {
            grants
                .iter()
                .find(|g| g.client.as_ref() == client)
                .map_or_else(new_token, |g| g.token.clone())
        };
        let next: Vec<Grant> = match clients {
            [] => vec![Grant {
                client: None,
                token: keep(None),
                roles: None,
            }],
            clients => clients
                .iter()
                .map(|c| Grant {
                    client: Some(c.name.clone()),
                    token: keep(Some(&c.name)),
                    roles: Some(c.roles.clone()),
                })
                .collect(),
        };
        *grants = next;
        grants
            .iter()
            .map(|g| (g.client.clone(), g.token.clone()))
            .collect()
    }

    /// Whether the tokens are clients' (the endpoint then audits and labels by client).
    pub fn by_client(&self) -> bool {
        let grants = self.grants.read().expect("access lock poisoned");
        grants.iter().any(|g| g.client.is_some())
    }

    /// What `auth` (the request's Authorization header) allows for `role`. Every token is
    /// compared in full, in constant time, so the time taken tells nothing of any of them.
    pub fn decide(&self, auth: Option<&str>, role: &str) -> Decision {
        let grants = self.grants.read().expect("access lock poisoned");
        let mut found = None;
        for grant in grants.iter() {
            if token_matches(&grant.token, auth) {
                found = Some(grant);
            }
        }
        let Some(grant) = found else {
            return Decision::Unknown;
        };
        match (&grant.roles, &grant.client) {
            (Some(roles), Some(client)) if !roles.iter().any(|r| r.as_str() == role) => {
                Decision::Forbidden(client.clone())
            }
            _ => Decision::Allowed(grant.client.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn client(name: &str, roles: &[&str]) -> ClientConfig {
        ClientConfig {
            name: name.parse().unwrap(),
            roles: roles.iter().map(|r| r.parse().unwrap()).collect(),
            directory: PathBuf::from("/d").join(name),
            app_directory: None,
        }
    }

    fn token_of(issued: &Issued, client: Option<&str>) -> String {
        let (_, token) = issued
            .iter()
            .find(|(c, _)| c.as_ref().map(ClientName::as_str) == client)
            .unwrap();
        token.expose().to_string()
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Secret::new("abcdef");
        assert!(token_matches(&t, Some("abcdef")));
        for wrong in [
            None,
            Some(""),
            Some("abcdeF"),
            Some("abcde"),
            Some("abcdefg"),
            Some("abcdef\n"),
        ] {
            assert!(!token_matches(&t, wrong), "{wrong:?}");
        }
    }

    #[test]
    fn one_token_opens_every_role_without_clients() {
        let access = Access::new();
        assert_eq!(
            access.decide(Some("x"), "a"),
            Decision::Unknown,
            "nothing issued yet"
        );
        let issued = access.issue(&[]);
        assert_eq!(issued.len(), 1);
        let token = token_of(&issued, None);
        assert_eq!(access.decide(Some(&token), "any"), Decision::Allowed(None));
        assert_eq!(access.decide(None, "any"), Decision::Unknown);
        assert!(!access.by_client());
    }

    #[test]
    fn a_client_token_opens_its_own_roles_only() {
        let access = Access::new();
        let issued = access.issue(&[client("billing", &["a"]), client("reports", &["a", "c"])]);
        assert!(access.by_client());
        let (billing, reports) = (
            token_of(&issued, Some("billing")),
            token_of(&issued, Some("reports")),
        );
        assert_ne!(billing, reports);
        let name = |n: &str| n.parse::<ClientName>().unwrap();
        assert_eq!(
            access.decide(Some(&billing), "a"),
            Decision::Allowed(Some(name("billing")))
        );
        assert_eq!(
            access.decide(Some(&billing), "c"),
            Decision::Forbidden(name("billing"))
        );
        assert_eq!(
            access.decide(Some(&billing), "nope"),
            Decision::Forbidden(name("billing"))
        );
        assert_eq!(
            access.decide(Some(&reports), "c"),
            Decision::Allowed(Some(name("reports")))
        );
        assert_eq!(access.decide(Some("wrong"), "a"), Decision::Unknown);
    }

    #[test]
    fn a_kept_client_keeps_its_token_through_a_reissue() {
        let access = Access::new();
        let first = access.issue(&[client("billing", &["a"]), client("gone", &["a"])]);
        let billing = token_of(&first, Some("billing"));
        let gone = token_of(&first, Some("gone"));
        let second = access.issue(&[client("billing", &["a", "c"]), client("new", &["c"])]);
        assert_eq!(token_of(&second, Some("billing")), billing);
        assert_ne!(token_of(&second, Some("new")), gone);
        assert_eq!(
            access.decide(Some(&gone), "a"),
            Decision::Unknown,
            "a removed client's token is refused"
        );
        assert!(
            matches!(access.decide(Some(&billing), "c"), Decision::Allowed(_)),
            "its new role opens"
        );
        let none = access.issue(&[]);
        assert_eq!(access.decide(Some(&billing), "a"), Decision::Unknown);
        assert_ne!(token_of(&none, None), billing);
    }
}
