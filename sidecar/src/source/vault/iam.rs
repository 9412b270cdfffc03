//! Vault's AWS IAM login: a SigV4-signed `sts:GetCallerIdentity` request that Vault replays.
//!
//! The client never calls STS itself. It signs `POST https://sts.<region>.amazonaws.com/` with
//! body `Action=GetCallerIdentity&Version=2011-06-15` using the credentials of the standard AWS
//! chain (environment, ECS/App Runner container credentials, IMDSv2), then sends Vault
//! `POST /v1/auth/<mount>/login` with:
//!
//! ```json
//! { "role": "...", "iam_http_request_method": "POST",
//!   "iam_request_url": base64(url), "iam_request_body": base64(body),
//!   "iam_request_headers": base64(JSON {"Header": ["value"], ...}) }
//! ```
//!
//! `X-Vault-AWS-IAM-Server-ID` (when configured) is one of the signed STS headers, so Vault can
//! check that the signature was made for it; it is not a header of the request to Vault.
//!
//! Region: `us-east-1` signs for the global endpoint `sts.amazonaws.com` (Vault's default
//! `sts_endpoint`); another region signs for `sts.<region>.amazonaws.com`, which must match the
//! `sts_endpoint`/`sts_region` configured on Vault's AWS auth mount.
//!
//! Signing is done by `aws-sigv4` ([`sign_headers`]); its output is checked against AWS's
//! published SigV4 test vectors in the tests below.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

/// The body of the signed STS request.
pub const STS_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The STS URL Vault expects a signature for, in `region`.
pub fn sts_url(region: &str) -> String {
    if region == "us-east-1" {
        "https://sts.amazonaws.com/".to_owned()
    } else {
        format!("https://sts.{region}.amazonaws.com/")
    }
}

/// Signs a request with SigV4 (signature in headers, payload hash not sent as a header) and
/// returns every header of the signed request: the given ones followed by those the signature
/// adds (`X-Amz-Date`, `X-Amz-Security-Token` with session credentials, `Authorization`).
#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("SigV4 signing: {e}"))?
        .into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in instructions.headers() {
        out.push((canonical_case(k), v.to_owned()));
    }
    Ok(out)
}

/// `x-amz-date` → `X-Amz-Date` (as Go's `http.Header` would spell it; Vault does not care).
fn canonical_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The JSON body of `POST /v1/auth/<mount>/login` for the AWS IAM method. It holds a signature
/// (short-lived, usable only for GetCallerIdentity) but no secret key: still, never log it.
pub fn login_payload(
    role: &str,
    server_id: Option<&str>,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<Value, String> {
    let url = sts_url(region);
    let host = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let mut headers: Vec<(&str, &str)> = vec![("Host", &host), ("Content-Type", CONTENT_TYPE)];
    if let Some(id) = server_id {
        headers.push(("X-Vault-AWS-IAM-Server-ID", id));
    }
    let signed = sign_headers(
        "POST",
        &url,
        &headers,
        STS_BODY.as_bytes(),
        credentials,
        region,
        "sts",
        time,
    )?;
    let mut map = Map::new();
    for (k, v) in signed {
        map.insert(k, json!([v]));
    }
    let headers_json = serde_json::to_vec(&Value::Object(map)).map_err(|e| e.to_string())?;
    Ok(json!({
        "role": role,
        "iam_http_request_method": "POST",
        "iam_request_url": B64.encode(url.as_bytes()),
        "iam_request_body": B64.encode(STS_BODY.as_bytes()),
        "iam_request_headers": B64.encode(headers_json),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // AWS Signature Version 4 test suite (AWS General Reference, "Signature Version 4 test
    // suite"): credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, date
    // 20150830T123600Z, region us-east-1, service "service".
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z
    fn vector_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(AKID, SECRET, token.map(str::to_owned), None, "test")
    }

    #[test]
    fn vector_get_vanilla() {
        let h = sign_headers(
            "GET",
            "https://example.amazonaws.com/",
            &[("Host", "example.amazonaws.com")],
            b"",
            &creds(None),
            "us-east-1",
            "service",
            vector_time(),
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn vector_post_vanilla() {
        let h = sign_headers(
            "POST",
            "https://example.amazonaws.com/",
            &[("Host", "example.amazonaws.com")],
            b"",
            &creds(None),
            "us-east-1",
            "service",
            vector_time(),
        )
        .unwrap();
        assert!(
            header(&h, "authorization").unwrap().ends_with(
                "SignedHeaders=host;x-amz-date, \
                 Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            ),
            "{h:?}"
        );
    }

    #[test]
    fn vector_get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let h = sign_headers(
            "GET",
            "https://example.amazonaws.com/",
            &[("Host", "example.amazonaws.com")],
            b"",
            &creds(Some(token)),
            "us-east-1",
            "service",
            vector_time(),
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-security-token"), Some(token));
        assert!(
            header(&h, "authorization").unwrap().ends_with(
                "SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            ),
            "{h:?}"
        );
    }

    fn decode(v: &Value, k: &str) -> Vec<u8> {
        B64.decode(v[k].as_str().unwrap()).unwrap()
    }

    #[test]
    fn login_payload_has_vaults_documented_shape() {
        let p = login_payload(
            "app-role",
            Some("vault.example.com"),
            "us-east-1",
            &creds(Some("SESSIONTOKEN")),
            vector_time(),
        )
        .unwrap();
        let obj = p.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "iam_http_request_method",
                "iam_request_body",
                "iam_request_headers",
                "iam_request_url",
                "role"
            ]
        );
        assert_eq!(p["role"], "app-role");
        assert_eq!(p["iam_http_request_method"], "POST");
        assert_eq!(decode(&p, "iam_request_url"), b"https://sts.amazonaws.com/");
        assert_eq!(
            decode(&p, "iam_request_body"),
            b"Action=GetCallerIdentity&Version=2011-06-15"
        );
        let headers: Value = serde_json::from_slice(&decode(&p, "iam_request_headers")).unwrap();
        let h = headers.as_object().unwrap();
        assert_eq!(h["Host"][0], "sts.amazonaws.com");
        assert_eq!(h["X-Vault-AWS-IAM-Server-ID"][0], "vault.example.com");
        assert_eq!(h["X-Amz-Date"][0], "20150830T123600Z");
        assert_eq!(h["X-Amz-Security-Token"][0], "SESSIONTOKEN");
        let auth = h["Authorization"][0].as_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id, \
                 Signature="
            ),
            "{auth}"
        );
        // The secret key itself is nowhere in the payload.
        assert!(!p.to_string().contains(SECRET));
        assert!(!String::from_utf8_lossy(&decode(&p, "iam_request_headers")).contains(SECRET));
    }

    #[test]
    fn other_regions_sign_for_the_regional_endpoint() {
        let p = login_payload("r", None, "eu-west-1", &creds(None), vector_time()).unwrap();
        assert_eq!(
            decode(&p, "iam_request_url"),
            b"https://sts.eu-west-1.amazonaws.com/"
        );
        let headers: Value = serde_json::from_slice(&decode(&p, "iam_request_headers")).unwrap();
        assert!(headers.get("X-Vault-AWS-IAM-Server-ID").is_none());
        assert!(
            headers["Authorization"][0]
                .as_str()
                .unwrap()
                .contains("/20150830/eu-west-1/sts/aws4_request")
        );
    }
}
