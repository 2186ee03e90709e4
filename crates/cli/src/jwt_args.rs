//! `ctxmesh serve` options for identities from an OpenID Connect provider
//! (bearer JWTs verified against the provider's key set).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ctxmesh_server::jwt::{JwksSource, JwtAuth, JwtConfig};

/// Bearer JWTs of an OpenID Connect provider as agent identities.
#[derive(Args, Debug, Default)]
pub(crate) struct JwtArgs {
    /// Accept bearer JWTs of this OpenID Connect issuer (exactly as its
    /// tokens' `iss` writes it), beside ctxmesh's own tokens. Its signing
    /// keys come from {issuer}/.well-known/openid-configuration, unless
    /// --jwks-file is given.
    #[arg(long, env = "CTXMESH_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// The audience the tokens must be issued for (their `aud`): required
    /// with --jwt-issuer. Repeat it, or separate by commas, to accept
    /// several.
    #[arg(long, env = "CTXMESH_JWT_AUDIENCE", value_delimiter = ',')]
    jwt_audience: Vec<String>,
    /// A local JWKS file with the issuer's signing keys, instead of its
    /// discovery document; read again when it changes.
    #[arg(long, env = "CTXMESH_JWKS_FILE")]
    jwks_file: Option<PathBuf>,
    /// The claim whose value is the agent id [default: sub].
    #[arg(long, env = "CTXMESH_JWT_AGENT_CLAIM")]
    jwt_agent_claim: Option<String>,
    /// A claim whose value (none, low, medium, high, full) is the agent's
    /// trust level for policies (default: the registered agent's, else
    /// low).
    #[arg(long, env = "CTXMESH_JWT_TRUST_CLAIM")]
    jwt_trust_claim: Option<String>,
    /// Clock skew tolerated on the tokens' exp and nbf, in seconds
    /// [default: 60].
    #[arg(long, env = "CTXMESH_JWT_LEEWAY_SECS")]
    jwt_leeway_secs: Option<u64>,
}

impl JwtArgs {
    /// The JWT settings, or `None` when no issuer is given; a mistake
    /// (options without an issuer, an issuer without an audience, JWTs
    /// with `--auth off`) is an error.
    pub(crate) fn config(&self, auth_off: bool) -> anyhow::Result<Option<JwtConfig>> {
        let Some(issuer) = &self.jwt_issuer else {
            let given = [
                (!self.jwt_audience.is_empty(), "--jwt-audience"),
                (self.jwks_file.is_some(), "--jwks-file"),
                (self.jwt_agent_claim.is_some(), "--jwt-agent-claim"),
                (self.jwt_trust_claim.is_some(), "--jwt-trust-claim"),
                (self.jwt_leeway_secs.is_some(), "--jwt-leeway-secs"),
            ];
            if let Some((_, flag)) = given.iter().find(|(set, _)| *set) {
                anyhow::bail!("{flag} needs --jwt-issuer (CTXMESH_JWT_ISSUER): the issuer whose JWTs are accepted");
            }
            return Ok(None);
        };
        if auth_off {
            anyhow::bail!(
                "--jwt-issuer needs --auth on: with --auth off callers name themselves and no token is checked"
            );
        }
        let source = match &self.jwks_file {
            Some(path) => JwksSource::File(path.clone()),
            None => JwksSource::Discovery,
        };
        let audiences = self.jwt_audience.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
        let mut config = JwtConfig::new(issuer.trim(), audiences, source);
        if let Some(claim) = &self.jwt_agent_claim {
            config.agent_claim = claim.clone();
        }
        config.trust_claim = self.jwt_trust_claim.clone();
        if let Some(secs) = self.jwt_leeway_secs {
            config.leeway = Duration::from_secs(secs);
        }
        config.check().map_err(anyhow::Error::msg)?;
        Ok(Some(config))
    }

    /// Starts JWT verification as configured (see [`JwtArgs::config`]),
    /// fetching keys with the client `http` makes. An unreadable key file
    /// is an error; a provider that cannot be reached is retried in the
    /// background.
    pub(crate) async fn start(
        &self,
        auth_off: bool,
        http: impl FnOnce() -> reqwest::Client,
    ) -> anyhow::Result<Option<Arc<JwtAuth>>> {
        let Some(config) = self.config(auth_off)? else { return Ok(None) };
        let http = http();
        let (issuer, audiences) = (config.issuer.clone(), config.audiences.join(","));
        let jwt = JwtAuth::start(config, http).await.map_err(anyhow::Error::msg)?;
        tracing::info!(%issuer, %audiences, "accepting bearer JWTs of an OpenID Connect issuer");
        Ok(Some(jwt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_options_are_refused() {
        let args = JwtArgs { jwt_audience: vec!["ctxmesh".into()], ..Default::default() };
        assert!(args.config(false).unwrap_err().to_string().contains("--jwt-audience needs --jwt-issuer"));
        let args = JwtArgs { jwt_issuer: Some("https://id.example.com".into()), ..Default::default() };
        assert!(args.config(false).unwrap_err().to_string().contains("--jwt-audience"));
        let args = JwtArgs {
            jwt_issuer: Some("https://id.example.com".into()),
            jwt_audience: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert!(args.config(true).unwrap_err().to_string().contains("--auth on"));
        let config = args.config(false).unwrap().unwrap();
        assert_eq!((config.audiences.len(), config.agent_claim.as_str()), (2, "sub"));
        assert_eq!(JwtArgs::default().config(false).unwrap().map(|c| c.issuer), None);
    }
}
