//! Lexer and parser for the Go text/template subset docker's `--format` uses.

use crate::Error;

/// A position in the template source, 1-based as Go reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If {
        pipe: Pipe,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub pos: Pos,
    /// Variables declared by `$x := ...` or `$i, $e := ...` (range).
    pub decl: Vec<String>,
    /// `$x = v` (assign an existing variable) rather than `$x := v`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    /// Source text of the pipeline, for error messages (`at <.Foo>`).
    pub src: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.A.B`; an empty vector is `.` itself.
    Field(Vec<String>),
    /// `$name.A.B`; `$` alone is the root.
    Var(String, Vec<String>),
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Nil,
    Ident(String),
    /// `(pipeline).A.B`
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(serde_json::Number),
    Ident(String),
    Pipe,
    LParen,
    RParen(Vec<String>),
    Comma,
    Declare,
    Assign,
}

/// One `{{ }}` action or a run of text, before parsing.
enum Item {
    Text(String),
    Action {
        toks: Vec<(Tok, Pos)>,
        pos: Pos,
        src: String,
    },
}

fn pos_at(src: &str, byte: usize) -> Pos {
    let before = &src[..byte];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(byte, |i| byte - i - 1) + 1;
    Pos { line, col }
}

fn err(src: &str, byte: usize, msg: impl Into<String>) -> Error {
    let p = pos_at(src, byte);
    Error::Parse {
        line: p.line,
        col: p.col,
        msg: msg.into(),
    }
}

fn split_items(src: &str) -> Result<Vec<Item>, Error> {
    let mut items = Vec::new();
    let mut rest = 0usize;
    let mut trim_next = false;
    while rest <= src.len() {
        let Some(open_rel) = src[rest..].find("{{") else {
            let mut text = &src[rest..];
            if trim_next {
                text = text.trim_start();
            }
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            break;
        };
        let open = rest + open_rel;
        let mut text = &src[rest..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = open + 2;
        let b = src.as_bytes();
        // "{{- " trims the text before; "{{-3}}" is a number, so a space must follow.
        if b.get(inner_start) == Some(&b'-')
            && b.get(inner_start + 1)
                .is_some_and(|c| c.is_ascii_whitespace())
        {
            text = text.trim_end();
            inner_start += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let (toks, end) = lex_action(src, inner_start)?;
        let mut inner_end = end;
        trim_next = false;
        if src[..end].ends_with(" -") || src[..end].ends_with("\t-") || src[..end].ends_with("\n-")
        {
            trim_next = true;
            inner_end = end - 1;
        }
        let src_text = src[inner_start..inner_end].trim().to_string();
        if let Some(toks) = toks {
            items.push(Item::Action {
                toks,
                pos: pos_at(src, open),
                src: src_text,
            });
        }
        rest = end + 2;
    }
    Ok(items)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Lexes from `start` up to the closing `}}`; returns the tokens (None for a
/// comment) and the byte offset of the `}}` (or of ` -}}`'s `-` + 1).
#[allow(clippy::type_complexity)]
fn lex_action(src: &str, start: usize) -> Result<(Option<Vec<(Tok, Pos)>>, usize), Error> {
    let b = src.as_bytes();
    let mut i = start;
    // Comments: {{/* ... */}}
    let trimmed = src[i..].trim_start();
    if trimmed.starts_with("/*") {
        let cstart = src.len() - trimmed.len();
        let Some(close) = src[cstart..].find("*/") else {
            return Err(err(src, cstart, "unclosed comment"));
        };
        let after = cstart + close + 2;
        let rest = &src[after..];
        let rest_trim = rest.trim_start();
        let skip = rest.len() - rest_trim.len();
        if rest_trim.starts_with("-}}") && skip > 0 {
            return Ok((None, after + skip + 1));
        }
        if rest_trim.starts_with("}}") {
            return Ok((None, after + skip));
        }
        return Err(err(src, after, "comment ends before closing delimiter"));
    }
    let mut toks = Vec::new();
    loop {
        let Some(&c) = b.get(i) else {
            return Err(err(src, start, "unclosed action"));
        };
        let here = pos_at(src, i);
        match c {
            b'}' if b.get(i + 1) == Some(&b'}') => return Ok((Some(toks), i)),
            b'-' if b.get(i + 1) == Some(&b'}')
                && b.get(i + 2) == Some(&b'}')
                && i > start
                && b[i - 1].is_ascii_whitespace() =>
            {
                return Ok((Some(toks), i + 1));
            }
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'|' => {
                toks.push((Tok::Pipe, here));
                i += 1;
            }
            b'(' => {
                toks.push((Tok::LParen, here));
                i += 1;
            }
            b')' => {
                i += 1;
                let (fields, ni) = lex_fields(src, i)?;
                i = ni;
                toks.push((Tok::RParen(fields), here));
            }
            b',' => {
                toks.push((Tok::Comma, here));
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push((Tok::Declare, here));
                i += 2;
            }
            b'=' => {
                toks.push((Tok::Assign, here));
                i += 1;
            }
            b'.' => {
                if b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    let (n, ni) = lex_number(src, i)?;
                    toks.push((Tok::Num(n), here));
                    i = ni;
                } else if src[i + 1..].chars().next().is_some_and(is_ident_char) {
                    let (fields, ni) = lex_fields(src, i)?;
                    i = ni;
                    toks.push((Tok::Field(fields), here));
                } else {
                    toks.push((Tok::Field(Vec::new()), here));
                    i += 1;
                }
            }
            b'$' => {
                let mut j = i + 1;
                while let Some(c) = src[j..].chars().next().filter(|c| is_ident_char(*c)) {
                    j += c.len_utf8();
                }
                let name = src[i..j].to_string();
                let (fields, ni) = lex_fields(src, j)?;
                i = ni;
                toks.push((Tok::Var(name, fields), here));
            }
            b'"' => {
                let (s, ni) = lex_quoted(src, i)?;
                toks.push((Tok::Str(s), here));
                i = ni;
            }
            b'`' => {
                let Some(close) = src[i + 1..].find('`') else {
                    return Err(err(src, i, "unterminated raw quoted string"));
                };
                toks.push((Tok::Str(src[i + 1..i + 1 + close].to_string()), here));
                i = i + 2 + close;
            }
            b'\'' => {
                let rest = &src[i + 1..];
                let mut chars = rest.char_indices();
                let ch = match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => '\n',
                        Some((_, 't')) => '\t',
                        Some((_, c)) => c,
                        None => return Err(err(src, i, "unterminated character constant")),
                    },
                    Some((_, c)) => c,
                    None => return Err(err(src, i, "unterminated character constant")),
                };
                match chars.next() {
                    Some((k, '\'')) => {
                        toks.push((Tok::Num((ch as u32).into()), here));
                        i = i + 1 + k + 1;
                    }
                    _ => return Err(err(src, i, "unterminated character constant")),
                }
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let (n, ni) = lex_number(src, i)?;
                toks.push((Tok::Num(n), here));
                i = ni;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                if ch.is_alphabetic() || ch == '_' {
                    let mut j = i;
                    while let Some(c) = src[j..].chars().next() {
                        if !is_ident_char(c) {
                            break;
                        }
                        j += c.len_utf8();
                    }
                    toks.push((Tok::Ident(src[i..j].to_string()), here));
                    i = j;
                } else {
                    return Err(err(src, i, format!("unexpected {ch:?} in command")));
                }
            }
        }
    }
}

/// Reads a chain of `.Name` selectors starting at `i` (possibly none).
fn lex_fields(src: &str, mut i: usize) -> Result<(Vec<String>, usize), Error> {
    let b = src.as_bytes();
    let mut fields = Vec::new();
    while b.get(i) == Some(&b'.') {
        let mut j = i + 1;
        while let Some(c) = src[j..].chars().next() {
            if !is_ident_char(c) {
                break;
            }
            j += c.len_utf8();
        }
        if j == i + 1 {
            return Err(err(src, i, "bad character after '.' in field chain"));
        }
        fields.push(src[i + 1..j].to_string());
        i = j;
    }
    Ok((fields, i))
}

fn lex_number(src: &str, i: usize) -> Result<(serde_json::Number, usize), Error> {
    let mut j = i;
    let b = src.as_bytes();
    if matches!(b.get(j), Some(b'-' | b'+')) {
        j += 1;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'.' || b[j] == b'_') {
        // Allow exponents with sign: 1e-3
        if (b[j] == b'e' || b[j] == b'E') && matches!(b.get(j + 1), Some(b'-' | b'+')) {
            j += 1;
        }
        j += 1;
    }
    let text = src[i..j].replace('_', "");
    let num = if let Ok(v) = text.parse::<i64>() {
        Some(v.into())
    } else if let Some(hex) = text.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok().map(Into::into)
    } else {
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    };
    match num {
        Some(n) => Ok((n, j)),
        None => Err(err(src, i, format!("bad number syntax: {:?}", &src[i..j]))),
    }
}

fn lex_quoted(src: &str, i: usize) -> Result<(String, usize), Error> {
    let mut out = String::new();
    let mut it = src[i + 1..].char_indices();
    while let Some((k, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1 + k + 1)),
            '\n' => break,
            '\\' => match it.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '0')) => out.push('\0'),
                Some((_, c)) => {
                    return Err(err(src, i, format!("unknown escape sequence: \\{c}")));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(err(src, i, "unterminated quoted string"))
}

/// Parses a template source into its node tree.
pub fn parse(src: &str) -> Result<Vec<Node>, Error> {
    let items = split_items(src)?;
    let mut p = Parser {
        items: items.into_iter().peekable(),
        depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End(pos) => Err(Error::Parse {
            line: pos.line,
            col: pos.col,
            msg: "unexpected {{end}}".into(),
        }),
        Stop::Else(pos, _) => Err(Error::Parse {
            line: pos.line,
            col: pos.col,
            msg: "unexpected {{else}}".into(),
        }),
    }
}

enum Stop {
    Eof,
    End(Pos),
    /// `{{else}}` or `{{else if ...}}` / `{{else with ...}}` (the tokens after else).
    Else(Pos, Vec<(Tok, Pos)>),
}

struct Parser {
    items: std::iter::Peekable<std::vec::IntoIter<Item>>,
    depth: usize,
}

/// Deeper nesting than any real format string is refused rather than
/// risking the stack.
const MAX_DEPTH: usize = 100;

fn perr(pos: Pos, msg: impl Into<String>) -> Error {
    Error::Parse {
        line: pos.line,
        col: pos.col,
        msg: msg.into(),
    }
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Error> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action { toks, pos, src } => {
                    let Some((first, _)) = toks.first() else {
                        return Err(perr(pos, "missing value for command"));
                    };
                    match first {
                        Tok::Ident(k) if k == "end" => {
                            if toks.len() > 1 {
                                return Err(perr(pos, "unexpected tokens after end"));
                            }
                            return Ok((nodes, Stop::End(pos)));
                        }
                        Tok::Ident(k) if k == "else" => {
                            return Ok((nodes, Stop::Else(pos, toks[1..].to_vec())));
                        }
                        Tok::Ident(k) if k == "if" || k == "range" || k == "with" => {
                            let kw = k.clone();
                            let node = self.control(&kw, toks[1..].to_vec(), pos, src)?;
                            nodes.push(node);
                        }
                        Tok::Ident(k)
                            if k == "define"
                                || k == "template"
                                || k == "block"
                                || k == "break"
                                || k == "continue" =>
                        {
                            return Err(perr(pos, format!("{{{{{k}}}}} is not supported")));
                        }
                        _ => nodes.push(Node::Action(pipeline(&toks, pos, src, true)?)),
                    }
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(
        &mut self,
        kw: &str,
        toks: Vec<(Tok, Pos)>,
        pos: Pos,
        src: String,
    ) -> Result<Node, Error> {
        let src = src
            .strip_prefix(kw)
            .map(|s| s.trim().to_string())
            .unwrap_or(src);
        let pipe = pipeline(&toks, pos, src, kw == "range" || kw == "with" || kw == "if")?;
        if pipe.cmds.is_empty() {
            return Err(perr(pos, format!("missing value for {kw}")));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(perr(pos, "template nests too deeply"));
        }
        let result = self.control_body(kw, pipe, pos);
        self.depth -= 1;
        result
    }

    fn control_body(&mut self, kw: &str, pipe: Pipe, pos: Pos) -> Result<Node, Error> {
        let (body, end) = self.list()?;
        let otherwise = match end {
            Stop::Eof => {
                return Err(perr(
                    pos,
                    format!("unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"),
                ))
            }
            Stop::End(_) => Vec::new(),
            Stop::Else(epos, rest) => {
                if rest.is_empty() {
                    let (other, end2) = self.list()?;
                    match end2 {
                        Stop::End(_) => other,
                        Stop::Eof => {
                            return Err(perr(epos, "unexpected EOF: {{else}} without {{end}}"));
                        }
                        Stop::Else(p, _) => return Err(perr(p, "expected end; found {{else}}")),
                    }
                } else {
                    // `{{else if x}}` chains: the nested control consumes the shared {{end}}.
                    let Some((Tok::Ident(k2), _)) = rest.first() else {
                        return Err(perr(epos, "unexpected tokens after else"));
                    };
                    if !(k2 == "if" || k2 == "with") {
                        return Err(perr(epos, format!("unexpected {k2} after else")));
                    }
                    let k2 = k2.clone();
                    vec![self.control(&k2, rest[1..].to_vec(), epos, String::new())?]
                }
            }
        };
        Ok(match kw {
            "if" => Node::If {
                pipe,
                then: body,
                otherwise,
            },
            "range" => Node::Range {
                pipe,
                body,
                otherwise,
            },
            _ => Node::With {
                pipe,
                body,
                otherwise,
            },
        })
    }
}

fn pipeline(toks: &[(Tok, Pos)], pos: Pos, src: String, allow_decl: bool) -> Result<Pipe, Error> {
    let mut decl = Vec::new();
    let mut assign = false;
    let mut rest = toks;
    // Declarations: `$x :=` or `$i, $e :=`
    let decl_at = toks
        .iter()
        .position(|(t, _)| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(d) = decl_at {
        if !allow_decl && d > 1 {
            return Err(perr(pos, "too many declarations"));
        }
        for (k, (t, p)) in toks[..d].iter().enumerate() {
            match t {
                Tok::Var(name, f) if f.is_empty() && k % 2 == 0 => decl.push(name.clone()),
                Tok::Comma if k % 2 == 1 => {}
                _ => return Err(perr(*p, "bad variable declaration")),
            }
        }
        if decl.is_empty() || decl.len() > 2 {
            return Err(perr(pos, "bad variable declaration"));
        }
        assign = matches!(toks[d].0, Tok::Assign);
        rest = &toks[d + 1..];
    }
    let mut idx = 0;
    let (cmds, _) = parse_cmds(rest, &mut idx, pos, false, 0)?;
    if cmds.is_empty() {
        return Err(perr(pos, "missing value for command"));
    }
    Ok(Pipe {
        pos,
        decl,
        assign,
        cmds,
        src,
    })
}

/// Parses commands separated by `|` until the end or a `)` (when nested).
fn parse_cmds(
    toks: &[(Tok, Pos)],
    i: &mut usize,
    pos: Pos,
    nested: bool,
    depth: usize,
) -> Result<(Vec<Cmd>, Vec<String>), Error> {
    if depth > MAX_DEPTH {
        return Err(perr(pos, "template nests too deeply"));
    }
    let mut cmds = Vec::new();
    let mut args = Vec::new();
    while *i < toks.len() {
        let (t, p) = &toks[*i];
        *i += 1;
        match t {
            Tok::Pipe => {
                if args.is_empty() {
                    return Err(perr(*p, "missing command before '|'"));
                }
                cmds.push(Cmd {
                    args: std::mem::take(&mut args),
                });
            }
            Tok::RParen(fields) => {
                if !nested {
                    return Err(perr(*p, "unexpected right paren"));
                }
                if args.is_empty() {
                    return Err(perr(*p, "missing value in parenthesized pipeline"));
                }
                cmds.push(Cmd { args });
                return Ok((cmds, fields.clone()));
            }
            Tok::LParen => {
                let (sub, fields) = parse_cmds(toks, i, *p, true, depth + 1)?;
                args.push(Arg::Sub(
                    Box::new(Pipe {
                        pos: *p,
                        decl: Vec::new(),
                        assign: false,
                        cmds: sub,
                        src: String::new(),
                    }),
                    fields,
                ));
            }
            Tok::Field(f) => args.push(Arg::Field(f.clone())),
            Tok::Var(n, f) => args.push(Arg::Var(n.clone(), f.clone())),
            Tok::Str(s) => args.push(Arg::Str(s.clone())),
            Tok::Num(n) => args.push(Arg::Num(n.clone())),
            Tok::Ident(id) => match id.as_str() {
                "true" => args.push(Arg::Bool(true)),
                "false" => args.push(Arg::Bool(false)),
                "nil" => args.push(Arg::Nil),
                _ => args.push(Arg::Ident(id.clone())),
            },
            Tok::Comma | Tok::Declare | Tok::Assign => {
                return Err(perr(*p, "unexpected token in operand"));
            }
        }
    }
    if nested {
        return Err(perr(pos, "unclosed left paren"));
    }
    if !args.is_empty() {
        cmds.push(Cmd { args });
    } else if !cmds.is_empty() {
        return Err(perr(pos, "missing command after '|'"));
    }
    Ok((cmds, Vec::new()))
}
