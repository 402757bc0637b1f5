//! docker's `--format` handling for list and inspect commands.

use anyhow::{Context, Result};
use gotemplate::{MissingKey, Template};
use serde_json::Value;

/// How a list command prints, from its `--format` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ListFormat {
    /// A table with a header row; the template renders one row.
    Table(String),
    /// One rendered template per line, no header.
    Raw(String),
    /// One JSON object per line.
    Json,
}

impl ListFormat {
    /// Docker's rules: empty or `table` → the command's default table;
    /// `table TEMPLATE` → custom table; `json` → JSON lines; anything else →
    /// a raw template. `\t` and `\n` written literally become tab and newline.
    pub fn parse(format: Option<&str>, default_table: &str) -> Self {
        let f = format.unwrap_or("").trim();
        if f.is_empty() || f == "table" {
            return ListFormat::Table(preformat(default_table));
        }
        if f == "json" {
            return ListFormat::Json;
        }
        if let Some(rest) = f.strip_prefix("table ") {
            return ListFormat::Table(preformat(rest));
        }
        ListFormat::Raw(preformat(f))
    }
}

fn preformat(f: &str) -> String {
    f.trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n")
}

/// Escapes `<`, `>`, `&` (and U+2028/9) as Go's `encoding/json` does, so
/// JSON output is byte-identical to docker's. These characters only occur
/// inside JSON strings, so a textual replace is exact.
pub fn go_json_escape(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn template(src: &str, missing: MissingKey) -> Result<Template> {
    Template::parse(src)
        .map(|t| t.missing_key(missing))
        .map_err(|e| super::errors::client(anyhow::anyhow!("template parsing error: {e}")))
}

/// Renders list rows. `header` maps each field name to its column title.
pub fn render_list(fmt: &ListFormat, header: &Value, rows: &[Value]) -> Result<String> {
    match fmt {
        ListFormat::Json => {
            let mut out = String::new();
            for r in rows {
                out.push_str(&go_json_escape(&serde_json::to_string(r)?));
                out.push('\n');
            }
            Ok(out)
        }
        ListFormat::Raw(src) => {
            let t = template(src, MissingKey::Error)?;
            let mut out = String::new();
            for r in rows {
                out.push_str(&t.render(r)?);
                out.push('\n');
            }
            Ok(out)
        }
        ListFormat::Table(src) => {
            let t = template(src, MissingKey::Error)?;
            let mut body = String::new();
            // Docker renders the header by applying the same template to the
            // field→title map; a template that fails there prints no header.
            let head = Template::parse(src)
                .ok()
                .and_then(|h| h.render(header).ok())
                .unwrap_or_default();
            body.push_str(&head);
            body.push('\n');
            for r in rows {
                body.push_str(&t.render(r)?);
                body.push('\n');
            }
            Ok(super::table::tabulate(&body))
        }
    }
}

/// `inspect` output: docker's indented JSON array, or the template per item.
pub fn render_inspect(format: Option<&str>, items: &[Value]) -> Result<String> {
    match format {
        None | Some("") => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&items, &mut ser).context("encoding inspect output")?;
            let mut s = go_json_escape(&String::from_utf8_lossy(&buf));
            s.push('\n');
            Ok(s)
        }
        Some("json") => {
            let mut out = String::new();
            for i in items {
                out.push_str(&go_json_escape(&serde_json::to_string(i)?));
                out.push('\n');
            }
            Ok(out)
        }
        Some(src) => {
            let t = template(src, MissingKey::NoValue)?;
            let mut out = String::new();
            for i in items {
                out.push_str(&t.render(i)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header() -> Value {
        json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID"})
    }

    #[test]
    fn format_selection() {
        assert_eq!(
            ListFormat::parse(None, "{{.ID}}"),
            ListFormat::Table("{{.ID}}".into())
        );
        assert_eq!(
            ListFormat::parse(Some("table"), "{{.ID}}"),
            ListFormat::Table("{{.ID}}".into())
        );
        assert_eq!(ListFormat::parse(Some("json"), "x"), ListFormat::Json);
        assert_eq!(
            ListFormat::parse(Some("table {{.Repository}}\\t{{.Tag}}"), "x"),
            ListFormat::Table("{{.Repository}}\t{{.Tag}}".into())
        );
        assert_eq!(
            ListFormat::parse(Some("{{.ID}}\\n"), "x"),
            ListFormat::Raw("{{.ID}}\n".into())
        );
    }

    #[test]
    fn table_has_docker_spacing() {
        let rows = vec![
            json!({"Repository": "busybox", "Tag": "latest", "ID": "0123456789ab"}),
            json!({"Repository": "localhost:5000/a/very-long-name", "Tag": "1", "ID": "ba9876543210"}),
        ];
        let f = ListFormat::parse(Some("table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}"), "");
        let out = render_list(&f, &header(), &rows).unwrap();
        let want = "\
REPOSITORY                        TAG       IMAGE ID
busybox                           latest    0123456789ab
localhost:5000/a/very-long-name   1         ba9876543210
";
        assert_eq!(out, want);
    }

    #[test]
    fn raw_and_json_rows() {
        let rows = vec![json!({"Repository": "<none>", "Tag": "a&b"})];
        let out = render_list(
            &ListFormat::Raw("{{.Repository}}:{{.Tag}}".into()),
            &header(),
            &rows,
        )
        .unwrap();
        assert_eq!(out, "<none>:a&b\n");
        let out = render_list(&ListFormat::Json, &header(), &rows).unwrap();
        assert_eq!(
            out,
            "{\"Repository\":\"\\u003cnone\\u003e\",\"Tag\":\"a\\u0026b\"}\n"
        );
    }

    #[test]
    fn unknown_field_is_an_error_in_lists() {
        let rows = vec![json!({"Repository": "x"})];
        let e = render_list(&ListFormat::Raw("{{.Nope}}".into()), &header(), &rows).unwrap_err();
        assert!(e.to_string().contains("can't evaluate field Nope"), "{e}");
        let e = render_list(&ListFormat::Raw("{{.Nope".into()), &header(), &rows).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("template parsing error: template: :1:"),
            "{e}"
        );
    }

    #[test]
    fn inspect_shapes() {
        let items = vec![json!({"Id": "sha256:x", "RepoTags": []})];
        let out = render_inspect(None, &items).unwrap();
        assert_eq!(
            out,
            "[\n    {\n        \"Id\": \"sha256:x\",\n        \"RepoTags\": []\n    }\n]\n"
        );
        assert_eq!(
            render_inspect(Some("{{.Id}}"), &items).unwrap(),
            "sha256:x\n"
        );
        assert_eq!(
            render_inspect(Some("{{.Nope}}"), &items).unwrap(),
            "<no value>\n"
        );
        assert_eq!(render_inspect(None, &[]).unwrap(), "[]\n");
    }
}
