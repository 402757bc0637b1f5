//! `WWW-Authenticate` parsing (RFC 7235): one or more challenges, each a
//! scheme followed by `key=value` or `key="quoted"` parameters.

use std::collections::HashMap;

/// One authentication challenge, e.g. `Bearer realm="...",service="..."`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme: `bearer`, `basic`, ...
    pub scheme: String,
    /// Parameters with lowercased names.
    pub params: HashMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The scopes the registry asked for (space separated in `scope`).
    pub fn scopes(&self) -> Vec<String> {
        self.param("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] == b' ' || self.s[self.i] == b'\t') {
            self.i += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b',') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn token(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() && is_token_char(self.s[self.i]) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn quoted(&mut self) -> String {
        // Called on the opening quote.
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' if self.i + 1 < self.s.len() => {
                    out.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Tries to read `name = value`; rewinds and returns None if the next
    /// thing is not a parameter (it is then the next challenge's scheme).
    fn param(&mut self) -> Option<(String, String)> {
        let save = self.i;
        let name = self.token();
        self.skip_ws();
        if name.is_empty() || self.peek() != Some(b'=') {
            self.i = save;
            return None;
        }
        self.i += 1;
        self.skip_ws();
        let value = if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            self.token()
        };
        Some((name.to_ascii_lowercase(), value))
    }
}

/// Parses every challenge in a header value. Malformed parts are skipped,
/// never a panic: the header comes from the network.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let mut lx = Lexer {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_ws_and_commas();
        if lx.i >= lx.s.len() {
            break;
        }
        let scheme = lx.token();
        if scheme.is_empty() {
            // Not a token character: skip it and resynchronise.
            lx.i += 1;
            continue;
        }
        let mut params = HashMap::new();
        loop {
            lx.skip_ws_and_commas();
            match lx.param() {
                Some((k, v)) => {
                    params.entry(k).or_insert(v);
                }
                None => break,
            }
        }
        // token68 form (`Basic abc==`) has no params; nothing more to read.
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let c = parse_www_authenticate(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].scopes(), vec!["repository:library/busybox:pull"]);
    }

    #[test]
    fn several_scopes_and_spaces() {
        let h = r#"Bearer  realm = "http://127.0.0.1:1/t" , service="svc", scope="repository:a:pull,push repository:b:pull", error="insufficient_scope""#;
        let c = &parse_www_authenticate(h)[0];
        assert_eq!(
            c.scopes(),
            vec!["repository:a:pull,push", "repository:b:pull"]
        );
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        assert_eq!(c.param("realm"), Some("http://127.0.0.1:1/t"));
    }

    #[test]
    fn basic_and_multiple_challenges() {
        let c = parse_www_authenticate(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        let c = parse_www_authenticate(r#"Basic realm="a, b", Bearer realm="x",service=y"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("service"), Some("y"));
    }

    #[test]
    fn escapes_and_case() {
        let c = parse_www_authenticate(r#"BEARER Realm="a\"b\\c",SERVICE=tok"#);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some(r#"a"b\c"#));
        assert_eq!(c[0].param("service"), Some("tok"));
    }

    #[test]
    fn malformed_does_not_panic() {
        for h in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm=",
            "Bearer realm=\"unterminated",
            "=\"x\"",
            "Bearer ,=,",
            "\u{1F600} realm=x",
            "Basic dXNlcjpwYXNz",
        ] {
            let _ = parse_www_authenticate(h);
        }
        assert_eq!(parse_www_authenticate("Bearer")[0].scheme, "bearer");
        assert_eq!(
            parse_www_authenticate("Bearer realm=\"unterminated")[0].param("realm"),
            Some("unterminated")
        );
    }
}
