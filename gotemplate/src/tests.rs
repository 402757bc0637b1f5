use super::*;
use serde_json::json;

fn r(t: &str, v: &Value) -> String {
    Template::parse(t).unwrap().render(v).unwrap()
}

fn data() -> Value {
    json!({
        "Id": "sha256:abc",
        "RepoTags": ["busybox:latest", "bb:1"],
        "Config": {"Env": ["PATH=/bin", "A=b"], "Labels": {"b": "2", "a": "1"}, "Cmd": null},
        "Size": 4261544,
        "Ratio": 0.5,
        "Name": "hello world",
        "Empty": "",
        "Flag": true
    })
}

#[test]
fn fields_and_text() {
    let d = data();
    assert_eq!(
        r("id={{.Id}} size={{.Size}}", &d),
        "id=sha256:abc size=4261544"
    );
    assert_eq!(r("{{.Config.Env}}", &d), "[PATH=/bin A=b]");
    assert_eq!(r("{{.Config.Labels}}", &d), "map[a:1 b:2]");
    assert_eq!(r("{{.Missing}}", &d), "<no value>");
    assert_eq!(r("{{.Missing.Deeper}}", &d), "<no value>");
    assert_eq!(r("{{.Config.Cmd}}", &d), "<no value>");
    assert_eq!(r("{{.Ratio}}", &d), "0.5");
    assert_eq!(r("plain", &d), "plain");
    assert_eq!(r("", &d), "");
}

#[test]
fn missing_key_error_mode() {
    let t = Template::parse("{{.Nope}}")
        .unwrap()
        .missing_key(MissingKey::Error);
    let e = t.render(&data()).unwrap_err().to_string();
    assert_eq!(
        e,
        "template: :1:1: executing \"\" at <.Nope>: can't evaluate field Nope"
    );
}

#[test]
fn json_function_and_pipelines() {
    let d = data();
    assert_eq!(r("{{json .RepoTags}}", &d), r#"["busybox:latest","bb:1"]"#);
    assert_eq!(
        r("{{.RepoTags | json}}", &d),
        r#"["busybox:latest","bb:1"]"#
    );
    assert_eq!(r("{{json .Config.Labels}}", &d), r#"{"a":"1","b":"2"}"#);
    assert_eq!(r("{{json .Empty}}", &d), r#""""#);
    assert_eq!(r("{{json .Config.Cmd}}", &d), "null");
    assert_eq!(r("{{.Name | upper}}", &d), "HELLO WORLD");
    assert_eq!(r("{{.Name | upper | lower}}", &d), "hello world");
    assert_eq!(r("{{title .Name}}", &d), "Hello World");
    assert_eq!(r("{{join .Config.Env \",\"}}", &d), "PATH=/bin,A=b");
    assert_eq!(r("{{split .Name \" \"}}", &d), "[hello world]");
    assert_eq!(r("{{index (split .Name \" \") 1}}", &d), "world");
    assert_eq!(r("{{index .RepoTags 0}}", &d), "busybox:latest");
    assert_eq!(r("{{index .Config.Labels \"a\"}}", &d), "1");
    assert_eq!(r("{{len .RepoTags}}", &d), "2");
    assert_eq!(r("{{truncate .Id 9}}", &d), "sha256:ab");
    assert_eq!(r("{{truncate .Id 99}}", &d), "sha256:abc");
    assert_eq!(r("[{{pad .Empty 1 2}}]", &d), "[   ]");
    assert_eq!(r("{{println .Id}}", &d), "sha256:abc\n");
    assert_eq!(r("{{(index .RepoTags 1) | upper}}", &d), "BB:1");
    assert_eq!(r("{{with .Config}}{{.Labels.a}}{{end}}", &d), "1");
    assert_eq!(r("{{(.Config).Labels.b}}", &d), "2");
}

#[test]
fn printf_verbs() {
    let d = data();
    assert_eq!(
        r("{{printf \"%s-%d\" .Id .Size}}", &d),
        "sha256:abc-4261544"
    );
    assert_eq!(r("{{printf \"%q\" .Name}}", &d), "\"hello world\"");
    assert_eq!(
        r("{{printf \"%v\" .RepoTags}}", &d),
        "[busybox:latest bb:1]"
    );
    assert_eq!(r("{{printf \"%-6s|\" \"ab\"}}", &d), "ab    |");
    assert_eq!(r("{{printf \"%6s|\" \"ab\"}}", &d), "    ab|");
    assert_eq!(r("{{printf \"%05d\" 42}}", &d), "00042");
    assert_eq!(r("{{printf \"%.2f\" .Ratio}}", &d), "0.50");
    assert_eq!(r("{{printf \"%t\" .Flag}}", &d), "true");
    assert_eq!(r("{{printf \"%d\" .Name}}", &d), "%!d(string=hello world)");
    assert_eq!(r("{{printf \"%s %s\" .Id}}", &d), "sha256:abc %!s(MISSING)");
    assert_eq!(r("{{printf \"100%%\"}}", &d), "100%");
    // Found by the fuzzer: a huge width must not allocate it.
    assert_eq!(
        r(
            "{{printf \"%-0000000000000013372993424763562q|\" .Name}}",
            &d
        ),
        "%!(BADWIDTH)|%!(EXTRA string=hello world)"
    );
    assert_eq!(
        r("{{printf \"%.99999999999f\" .Ratio}}", &d),
        "%!(BADPREC)%!(EXTRA float64=0.5)"
    );
}

#[test]
fn control_structures() {
    let d = data();
    assert_eq!(
        r("{{range .RepoTags}}<{{.}}>{{end}}", &d),
        "<busybox:latest><bb:1>"
    );
    assert_eq!(
        r("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}", &d),
        "0=busybox:latest 1=bb:1 "
    );
    assert_eq!(
        r(
            "{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}",
            &d
        ),
        "a:1;b:2;"
    );
    assert_eq!(r("{{range .Config.Cmd}}x{{else}}none{{end}}", &d), "none");
    assert_eq!(r("{{if .Flag}}yes{{else}}no{{end}}", &d), "yes");
    assert_eq!(r("{{if .Empty}}yes{{else}}no{{end}}", &d), "no");
    assert_eq!(
        r("{{if .Empty}}a{{else if .Flag}}b{{else}}c{{end}}", &d),
        "b"
    );
    assert_eq!(r("{{if eq .Size 4261544}}big{{end}}", &d), "big");
    assert_eq!(r("{{if ne .Id \"x\"}}ne{{end}}", &d), "ne");
    assert_eq!(r("{{if and .Flag .Id}}both{{end}}", &d), "both");
    assert_eq!(
        r("{{if or .Empty .Missing}}x{{else}}neither{{end}}", &d),
        "neither"
    );
    assert_eq!(r("{{if not .Empty}}empty{{end}}", &d), "empty");
    assert_eq!(
        r("{{if lt 1 2}}lt{{end}}{{if ge 2 2}}ge{{end}}", &d),
        "ltge"
    );
    assert_eq!(r("{{with .Missing}}x{{else}}nothing{{end}}", &d), "nothing");
    assert_eq!(r("{{$x := .Id}}{{$x}}", &d), "sha256:abc");
    assert_eq!(
        r("{{range .RepoTags}}{{$.Id}} {{end}}", &d),
        "sha256:abc sha256:abc "
    );
    assert_eq!(r("{{$x := 1}}{{$x = 2}}{{$x}}", &d), "2");
}

#[test]
fn trim_markers_and_comments() {
    let d = data();
    assert_eq!(r("a  {{- .Id -}}  b", &d), "asha256:abcb");
    assert_eq!(r("a {{/* note */}} b", &d), "a  b");
    assert_eq!(r("a {{- /* note */ -}} b", &d), "ab");
    assert_eq!(r("{{-3}}", &d), "-3");
}

#[test]
fn parse_errors_name_position() {
    let cases = [
        ("{{.Id", "template: :1:3: unclosed action"),
        (
            "x\n {{if .Id}}",
            "template: :2:2: unexpected EOF: {{if}} without {{end}}",
        ),
        ("{{end}}", "template: :1:1: unexpected {{end}}"),
        ("{{\"abc}}", "template: :1:3: unterminated quoted string"),
        ("{{}}", "template: :1:1: missing value for command"),
        ("{{.A | }}", "template: :1:1: missing command after '|'"),
        ("{{(.A}}", "template: :1:3: unclosed left paren"),
        ("{{.A)}}", "template: :1:5: unexpected right paren"),
        (
            "{{define \"x\"}}{{end}}",
            "template: :1:1: {{define}} is not supported",
        ),
        ("{{@}}", "template: :1:3: unexpected '@' in command"),
    ];
    let mut bad = Vec::new();
    for (t, want) in cases {
        let e = Template::parse(t).unwrap_err().to_string();
        if e != want {
            bad.push(format!("{t:?}: got {e:?}, want {want:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn exec_errors_do_not_panic() {
    let d = data();
    for t in [
        "{{nosuch .Id}}",
        "{{.Id.Sub}}",
        "{{index .RepoTags 5}}",
        "{{.Id | .Size}}",
        "{{upper .Size}}",
        "{{join .Id \",\"}}",
        "{{range .Id}}x{{end}}",
        "{{$undefined}}",
        "{{pad .Id 999999999 0}}",
        "{{eq .Id 1}}",
        "{{len .Size}}",
    ] {
        let res = Template::parse(t).unwrap().render(&d);
        assert!(res.is_err(), "{t:?} should fail, got {res:?}");
    }
    let e = Template::parse("{{nosuch .Id}}")
        .unwrap()
        .render(&d)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "template: :1:1: executing \"\" at <nosuch .Id>: function \"nosuch\" not defined"
    );
}

#[test]
fn go_float_formatting() {
    assert_eq!(format_float_g(4.261544, 3), "4.26");
    assert_eq!(format_float_g(100.0, 3), "100");
    assert_eq!(format_float_g(999.9, 3), "1e+03");
    assert_eq!(format_float_g(4.1, 3), "4.1");
    assert_eq!(format_float_g(0.00001234, 3), "1.23e-05");
    assert_eq!(format_float_g(1234567.0, -1), "1.234567e+06");
    assert_eq!(format_float_g(123456.0, -1), "123456");
    assert_eq!(format_float_g(0.5, -1), "0.5");
    assert_eq!(format_float_g(12.0, 4), "12");
    assert_eq!(format_float_g(1.5, 4), "1.5");
}

/// A cheap stand-in for the cargo-fuzz target in the normal test run:
/// thousands of templates glued from template fragments must never panic.
#[test]
fn random_fragments_never_panic() {
    let frags = [
        "{{",
        "}}",
        "{{-",
        " -}}",
        ".",
        ".Id",
        ".Config.Labels",
        "$",
        "$x",
        ":=",
        "=",
        "|",
        "(",
        ")",
        "\"s\"",
        "`r`",
        "'c'",
        "1",
        "-2",
        "0x1f",
        "1.5e3",
        "if",
        "else",
        "end",
        "range",
        "with",
        "json",
        "index",
        "printf",
        "\"%s%d%v%q\"",
        "pad",
        "truncate",
        "split",
        "join",
        " ",
        "\n",
        "\\t",
        "/*",
        "*/",
        ",",
        "nil",
        "true",
        "len",
        "eq",
        "é",
        "{",
        "}",
    ];
    let value = data();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..20000 {
        let mut src = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % 12) as usize + 1;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            src.push_str(frags[(seed % frags.len() as u64) as usize]);
        }
        if let Ok(t) = Template::parse(&src) {
            let _ = t.render(&value);
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!("{{{{{}.Id{}}}}}", "(".repeat(5000), ")".repeat(5000));
    assert!(Template::parse(&deep).is_err());
    let ifs = format!("{}x{}", "{{if .Flag}}".repeat(5000), "{{end}}".repeat(5000));
    assert!(Template::parse(&ifs).is_err());
    let ok = format!("{}x{}", "{{if .Flag}}".repeat(50), "{{end}}".repeat(50));
    assert_eq!(Template::parse(&ok).unwrap().render(&data()).unwrap(), "x");
}
