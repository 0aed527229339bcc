//! HTTPS token selection and the redaction of secrets from URLs and messages.

use std::fmt;

/// The environment variable whose token is sent to any HTTPS Git host.
pub const FIREWORK_GIT_TOKEN: &str = "FIREWORK_GIT_TOKEN";
/// The environment variable whose token is sent only to the GitHub host.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// The user name sent with a token, which GitHub and most forges accept.
pub const TOKEN_USER: &str = "x-access-token";

/// A secret string whose `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Picks the HTTPS token for `url`: `FIREWORK_GIT_TOKEN` for any `https://` URL, else
/// `GITHUB_TOKEN` when the URL's host is `github_host`. Plain `http://`, `git://`, SSH and
/// file URLs never get a token.
pub fn token_for_url(
    url: &str,
    github_host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Secret> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = host_port.split(':').next().unwrap_or_default();
    let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    if let Some(token) = non_empty(env(FIREWORK_GIT_TOKEN)) {
        return Some(Secret::new(token.trim()));
    }
    if host.eq_ignore_ascii_case(github_host) {
        return non_empty(env(GITHUB_TOKEN)).map(|t| Secret::new(t.trim()));
    }
    None
}

/// Replaces the user information of a URL (`user:password@`) with `***@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}{path}", &authority[at + 1..]),
        None => url.to_owned(),
    }
}

/// Removes every known secret from a message: the token, the password in the URL and the
/// URL itself in its unredacted form.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
    url: Option<(String, String)>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// Builds a redactor for `url` and an optional token.
    pub fn new(url: &str, token: Option<&Secret>) -> Redactor {
        let mut secrets = Vec::new();
        if let Some(token) = token {
            secrets.push(token.expose().to_owned());
        }
        if let Some((_, rest)) = url.split_once("://") {
            let authority = rest.split('/').next().unwrap_or_default();
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                if let Some((_, password)) = userinfo.split_once(':')
                    && !password.is_empty()
                {
                    secrets.push(password.to_owned());
                }
                if !userinfo.is_empty() {
                    secrets.push(userinfo.to_owned());
                }
            }
        }
        Redactor {
            secrets,
            url: Some((url.to_owned(), redact_url(url))),
        }
    }

    /// Returns `text` with the URL redacted and every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if let Some((raw, redacted)) = &self.url {
            text = text.replace(raw.as_str(), redacted);
        }
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env_with<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn github_token_only_for_github_host() {
        let env = env_with(&[(GITHUB_TOKEN, "ghp_x")]);
        let token = token_for_url("https://github.com/o/r.git", "github.com", &env);
        assert_eq!(
            token.map(|t| t.expose().to_owned()),
            Some("ghp_x".to_owned())
        );
        assert_eq!(
            token_for_url("https://gitlab.example/o/r.git", "github.com", &env),
            None
        );
        assert_eq!(
            token_for_url("http://github.com/o/r.git", "github.com", &env),
            None
        );
        assert_eq!(
            token_for_url("git://github.com/o/r.git", "github.com", &env),
            None
        );
    }

    #[test]
    fn github_token_for_configured_enterprise_host() {
        let env = env_with(&[(GITHUB_TOKEN, "ghp_x")]);
        let token = token_for_url(
            "https://git.corp.example:8443/o/r",
            "git.corp.example",
            &env,
        );
        assert!(token.is_some());
    }

    #[test]
    fn firework_token_for_any_https_host() {
        let env = env_with(&[(FIREWORK_GIT_TOKEN, "fw"), (GITHUB_TOKEN, "ghp_x")]);
        let token = token_for_url("https://github.com/o/r.git", "github.com", &env);
        assert_eq!(token.map(|t| t.expose().to_owned()), Some("fw".to_owned()));
        assert!(token_for_url("https://gitlab.example/o/r.git", "github.com", &env).is_some());
        assert_eq!(
            token_for_url("ssh://git@host/r.git", "github.com", &env),
            None
        );
    }

    #[test]
    fn blank_token_is_ignored() {
        let env = env_with(&[(GITHUB_TOKEN, "  ")]);
        assert_eq!(
            token_for_url("https://github.com/o/r", "github.com", &env),
            None
        );
    }

    #[test]
    fn redacts_user_info() {
        assert_eq!(
            redact_url("https://user:pw@host:1/r.git"),
            "https://***@host:1/r.git"
        );
        assert_eq!(redact_url("https://host/r.git"), "https://host/r.git");
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
    }

    #[test]
    fn redactor_removes_token_and_password() {
        let redactor = Redactor::new(
            "https://bob:hunter2@host/r.git",
            Some(&Secret::new("tok123")),
        );
        let text = redactor.redact("failed https://bob:hunter2@host/r.git with tok123 and hunter2");
        assert_eq!(text, "failed https://***@host/r.git with *** and ***");
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret::new("abc")), "Secret(***)");
    }
}
