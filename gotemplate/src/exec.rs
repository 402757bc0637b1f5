//! Applies a parsed template to a JSON value.

use crate::gofmt::{go_print, go_type, sprint, sprintf, sprintln};
use crate::parse::{Arg, Cmd, Node, Pipe, Pos};
use crate::{Error, MissingKey};
use serde_json::Value;

/// Upper bound on the output, so a hostile template (`{{range}}` nesting over
/// big data, `pad` with a huge width) cannot exhaust memory.
const MAX_OUTPUT: usize = 64 << 20;
const MAX_PAD: i64 = 1 << 16;

pub struct Exec<'a> {
    root: &'a Value,
    missing: MissingKey,
    vars: Vec<(String, Value)>,
    /// Where the pipeline being evaluated sits, for error messages.
    pos: Pos,
    at: String,
}

impl<'a> Exec<'a> {
    pub fn new(root: &'a Value, missing: MissingKey) -> Self {
        Self {
            root,
            missing,
            vars: Vec::new(),
            pos: Pos { line: 1, col: 1 },
            at: String::new(),
        }
    }

    fn fail(&self, msg: impl Into<String>) -> Error {
        Error::Exec {
            line: self.pos.line,
            col: self.pos.col,
            at: self.at.clone(),
            msg: msg.into(),
        }
    }

    pub fn run(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), Error> {
        for node in nodes {
            if out.len() > MAX_OUTPUT {
                return Err(self.fail("output exceeds 64 MiB"));
            }
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        print_value(&v, out);
                    }
                }
                Node::If {
                    pipe,
                    then,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    let branch = if truth(&v) { then } else { otherwise };
                    self.run(branch, dot, out)?;
                    self.vars.truncate(mark);
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    if truth(&v) {
                        self.run(body, &v, out)?;
                    } else {
                        self.run(otherwise, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let decl = pipe.decl.clone();
                    let mut bare = pipe.clone();
                    bare.decl.clear();
                    let v = self.pipe(&bare, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, e)| (Value::from(i), e.clone()))
                            .collect(),
                        Value::Object(m) => {
                            let mut keys: Vec<&String> = m.keys().collect();
                            keys.sort();
                            keys.into_iter()
                                .map(|k| (Value::String(k.clone()), m[k.as_str()].clone()))
                                .collect()
                        }
                        Value::Null => Vec::new(),
                        Value::Number(n) if n.as_u64().is_some() => {
                            (0..n.as_u64().unwrap_or(0).min(1 << 20))
                                .map(|i| (Value::from(i), Value::from(i)))
                                .collect()
                        }
                        other => {
                            return Err(
                                self.fail(format!("range can't iterate over {}", go_print(other)))
                            )
                        }
                    };
                    if items.is_empty() {
                        self.run(otherwise, dot, out)?;
                    }
                    for (k, e) in items {
                        let inner = self.vars.len();
                        match decl.as_slice() {
                            [one] => self.vars.push((one.clone(), e.clone())),
                            [a, b] => {
                                self.vars.push((a.clone(), k));
                                self.vars.push((b.clone(), e.clone()));
                            }
                            _ => {}
                        }
                        self.run(body, &e, out)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, Error> {
        let saved = (self.pos, std::mem::take(&mut self.at));
        self.pos = pipe.pos;
        self.at = pipe.src.clone();
        let mut prev: Option<Value> = None;
        for cmd in &pipe.cmds {
            prev = Some(self.cmd(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Null);
        match pipe.decl.as_slice() {
            [name] => {
                // `$x = v` assigns an existing variable; `$x := v` declares one.
                if pipe.assign {
                    match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                        Some(slot) => slot.1 = v.clone(),
                        None => return Err(self.fail(format!("undefined variable: {name}"))),
                    }
                } else {
                    self.vars.push((name.clone(), v.clone()));
                }
            }
            [] => {}
            _ => return Err(self.fail("too many declarations in pipeline")),
        }
        self.pos = saved.0;
        self.at = saved.1;
        Ok(v)
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &Value, piped: Option<Value>) -> Result<Value, Error> {
        let Some(first) = cmd.args.first() else {
            return Err(self.fail("empty command"));
        };
        if let Arg::Ident(name) = first {
            let mut args = Vec::with_capacity(cmd.args.len());
            // `and`/`or` short-circuit in Go; evaluating all is equivalent here
            // since evaluation has no side effects.
            for a in &cmd.args[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(name, args);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err(self.fail(format!(
                "can't give argument to non-function {}",
                describe(first)
            )));
        }
        self.arg(first, dot)
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, Error> {
        match arg {
            Arg::Field(path) => self.walk(dot, path),
            Arg::Var(name, path) => {
                let base = if name == "$" {
                    self.root.clone()
                } else {
                    match self.vars.iter().rev().find(|(n, _)| n == name) {
                        Some((_, v)) => v.clone(),
                        None => return Err(self.fail(format!("undefined variable: {name}"))),
                    }
                };
                self.walk(&base, path)
            }
            Arg::Str(s) => Ok(Value::String(s.clone())),
            Arg::Num(n) => Ok(Value::Number(n.clone())),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Err(self.fail("nil is not a command")),
            Arg::Ident(name) => self.call(name, Vec::new()),
            Arg::Sub(pipe, path) => {
                let v = self.pipe(pipe, dot)?;
                self.walk(&v, path)
            }
        }
    }

    fn walk(&self, base: &Value, path: &[String]) -> Result<Value, Error> {
        let mut cur = base.clone();
        for key in path {
            cur = match cur {
                Value::Object(mut m) => match m.remove(key) {
                    Some(v) => v,
                    None => match self.missing {
                        MissingKey::NoValue => Value::Null,
                        MissingKey::Error => {
                            return Err(self.fail(format!("can't evaluate field {key}")));
                        }
                    },
                },
                Value::Null => match self.missing {
                    MissingKey::NoValue => Value::Null,
                    MissingKey::Error => {
                        return Err(self.fail(format!("nil pointer evaluating field {key}")));
                    }
                },
                other => {
                    return Err(self.fail(format!(
                        "can't evaluate field {key} in type {}",
                        go_type(&other)
                    )));
                }
            };
        }
        Ok(cur)
    }

    fn want(&self, name: &str, args: &[Value], n: usize) -> Result<(), Error> {
        if args.len() != n {
            return Err(self.fail(format!(
                "error calling {name}: wrong number of args for {name}: want {n} got {}",
                args.len()
            )));
        }
        Ok(())
    }

    fn string_arg(&self, name: &str, v: &Value) -> Result<String, Error> {
        match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.fail(format!(
                "wrong type for value; expected string; got {} (in {name})",
                go_type(other)
            ))),
        }
    }

    fn int_arg(&self, name: &str, v: &Value) -> Result<i64, Error> {
        match v {
            Value::Number(n) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
            other => Err(self.fail(format!(
                "wrong type for value; expected int; got {} (in {name})",
                go_type(other)
            ))),
        }
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, Error> {
        match name {
            "json" => {
                self.want(name, &args, 1)?;
                serde_json::to_string(&sorted_keys(&args[0]))
                    .map(Value::String)
                    .map_err(|e| self.fail(format!("error calling json: {e}")))
            }
            "upper" | "lower" | "title" => {
                self.want(name, &args, 1)?;
                let s = self.string_arg(name, &args[0])?;
                Ok(Value::String(match name {
                    "upper" => s.to_uppercase(),
                    "lower" => s.to_lowercase(),
                    _ => title(&s),
                }))
            }
            "join" => {
                self.want(name, &args, 2)?;
                let sep = self.string_arg(name, &args[1])?;
                match &args[0] {
                    Value::Array(a) => {
                        let parts: Result<Vec<String>, Error> =
                            a.iter().map(|v| self.string_arg(name, v)).collect();
                        Ok(Value::String(parts?.join(&sep)))
                    }
                    Value::Null => Ok(Value::String(String::new())),
                    other => Err(self.fail(format!(
                        "wrong type for value; expected []string; got {} (in join)",
                        go_type(other)
                    ))),
                }
            }
            "split" => {
                self.want(name, &args, 2)?;
                let s = self.string_arg(name, &args[0])?;
                let sep = self.string_arg(name, &args[1])?;
                let parts: Vec<Value> = if sep.is_empty() {
                    s.chars().map(|c| Value::String(c.to_string())).collect()
                } else {
                    s.split(sep.as_str())
                        .map(|p| Value::String(p.to_string()))
                        .collect()
                };
                Ok(Value::Array(parts))
            }
            "truncate" => {
                self.want(name, &args, 2)?;
                let s = self.string_arg(name, &args[0])?;
                let n = self.int_arg(name, &args[1])?.max(0) as usize;
                // Docker slices bytes; slice on a char boundary to stay valid UTF-8.
                if s.len() < n {
                    return Ok(Value::String(s));
                }
                let mut end = n;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                Ok(Value::String(s[..end].to_string()))
            }
            "pad" => {
                self.want(name, &args, 3)?;
                let s = self.string_arg(name, &args[0])?;
                let before = self.int_arg(name, &args[1])?;
                let after = self.int_arg(name, &args[2])?;
                if !(0..=MAX_PAD).contains(&before) || !(0..=MAX_PAD).contains(&after) {
                    return Err(self.fail("error calling pad: padding out of range"));
                }
                Ok(Value::String(format!(
                    "{}{s}{}",
                    " ".repeat(before as usize),
                    " ".repeat(after as usize)
                )))
            }
            "println" => Ok(Value::String(sprintln(&args))),
            "print" => Ok(Value::String(sprint(&args))),
            "printf" => {
                let Some((f, rest)) = args.split_first() else {
                    return Err(self.fail("wrong number of args for printf: want at least 1 got 0"));
                };
                let f = self.string_arg(name, f)?;
                Ok(Value::String(sprintf(&f, rest)))
            }
            "len" => {
                self.want(name, &args, 1)?;
                match &args[0] {
                    Value::String(s) => Ok(s.len().into()),
                    Value::Array(a) => Ok(a.len().into()),
                    Value::Object(m) => Ok(m.len().into()),
                    other => {
                        Err(self.fail(format!("error calling len: len of type {}", go_type(other))))
                    }
                }
            }
            "index" => {
                let Some((base, keys)) = args.split_first() else {
                    return Err(self.fail("wrong number of args for index: want at least 1 got 0"));
                };
                let mut cur = base.clone();
                for k in keys {
                    cur = match (&cur, k) {
                        (Value::Array(a), Value::Number(n)) => {
                            let i = n.as_i64().unwrap_or(-1);
                            if i < 0 || i as usize >= a.len() {
                                return Err(self.fail(format!(
                                    "error calling index: index out of range: {i}"
                                )));
                            }
                            a[i as usize].clone()
                        }
                        (Value::Object(m), Value::String(s)) => {
                            m.get(s).cloned().unwrap_or(Value::Null)
                        }
                        (Value::Null, _) => Value::Null,
                        (b, k) => {
                            return Err(self.fail(format!(
                                "error calling index: cannot index {} with {}",
                                go_type(b),
                                go_type(k)
                            )))
                        }
                    };
                }
                Ok(cur)
            }
            "not" => {
                self.want(name, &args, 1)?;
                Ok(Value::Bool(!truth(&args[0])))
            }
            "and" | "or" => {
                if args.is_empty() {
                    return Err(self.fail(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                }
                let want = name == "or";
                for a in &args {
                    if truth(a) == want {
                        return Ok(a.clone());
                    }
                }
                Ok(args.last().cloned().unwrap_or(Value::Null))
            }
            "eq" => {
                let Some((a, rest)) = args.split_first() else {
                    return Err(self.fail("wrong number of args for eq: want at least 1 got 0"));
                };
                if rest.is_empty() {
                    return Err(self.fail("error calling eq: missing argument for comparison"));
                }
                for b in rest {
                    if self.compare(a, b)? == std::cmp::Ordering::Equal {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                self.want(name, &args, 2)?;
                let o = self.compare(&args[0], &args[1])?;
                use std::cmp::Ordering::*;
                Ok(Value::Bool(match name {
                    "ne" => o != Equal,
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                }))
            }
            _ => Err(self.fail(format!("function {name:?} not defined"))),
        }
    }

    fn compare(&self, a: &Value, b: &Value) -> Result<std::cmp::Ordering, Error> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                    return Ok(x.cmp(&y));
                }
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y)
                    .ok_or_else(|| self.fail("incomparable numbers"))
            }
            (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
            (Value::Null, Value::Null) => Ok(std::cmp::Ordering::Equal),
            _ => Err(self.fail("error calling comparison: incompatible types for comparison")),
        }
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Field(p) if p.is_empty() => ".".into(),
        Arg::Field(p) => format!(".{}", p.join(".")),
        Arg::Var(n, p) if p.is_empty() => n.clone(),
        Arg::Var(n, p) => format!("{n}.{}", p.join(".")),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Num(n) => n.to_string(),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Ident(i) => i.clone(),
        Arg::Sub(..) => "(pipeline)".into(),
    }
}

/// Go's truth: false, 0, nil and empty strings, slices and maps are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn print_value(v: &Value, out: &mut String) {
    match v {
        // A missing key or nil interface prints as Go's "<no value>".
        Value::Null => out.push_str("<no value>"),
        other => out.push_str(&go_print(other)),
    }
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Go's encoding/json writes map keys sorted; our values may come from hash
/// maps (or keep insertion order), so sort for output that does not change
/// from run to run.
fn sorted_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}
