//! Go's `fmt` formatting of values, as templates print them.

use serde_json::Value;

/// Formats `x` like Go's `strconv.FormatFloat(x, 'g', prec, 64)` (`prec` < 0:
/// shortest representation, as `%v` prints a float64).
pub fn format_float_g(x: f64, prec: i32) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let neg = x < 0.0;
    let ax = x.abs();
    // Decimal digits and the decimal point position (value = 0.d1d2.. * 10^dp).
    let sci = if prec < 0 {
        format!("{ax:e}")
    } else {
        let p = prec.max(1) as usize;
        format!("{:.*e}", p - 1, ax)
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = if prec < 0 { 6 } else { prec.max(1) };
    if prec >= 0 && eprec > nd && nd >= dp {
        eprec = nd;
    }
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let e = dp - 1;
    if e < -4 || e >= eprec {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.abs()));
    } else if dp <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-dp) as usize));
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        out.push_str(&"0".repeat((dp - nd) as usize));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        format_float_g(n.as_f64().unwrap_or(0.0), -1)
    }
}

/// Formats a value as Go's `%v` does for the types JSON decodes into
/// (`map[k:v]` with sorted keys, `[a b]`, `<nil>`).
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_print).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_print(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const MAX_WIDTH: usize = 1_000_000;

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %t %f %x %%`
/// with `-`, `0` flags, width and precision. Bad verbs print as Go does
/// (`%!z(string=x)`), never fail.
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut argi = 0usize;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        let mut plus = false;
        while let Some(&f) = it.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = String::new();
        while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            it.next();
        }
        let mut prec: Option<usize> = None;
        let mut bad_prec = false;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                it.next();
            }
            match p.parse::<usize>() {
                Ok(v) if v <= MAX_WIDTH => prec = Some(v),
                Ok(_) => bad_prec = true,
                Err(_) if p.is_empty() => prec = Some(0),
                Err(_) => bad_prec = true,
            }
        }
        // Go refuses widths and precisions above 1e6 the same way.
        let bad_width = !width.is_empty() && width.parse::<usize>().map_or(true, |w| w > MAX_WIDTH);
        if bad_width || bad_prec {
            out.push_str(if bad_width {
                "%!(BADWIDTH)"
            } else {
                "%!(BADPREC)"
            });
            if it.next().is_none() {
                break;
            }
            continue;
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let body = match (verb, arg) {
            ('s' | 'v', Value::String(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('v' | 's', Value::Number(n)) if n.is_f64() && prec.is_some() => {
                format_float_g(n.as_f64().unwrap_or(0.0), prec.unwrap_or(0) as i32)
            }
            ('v', v) => {
                let s = go_print(v);
                if plus && matches!(v, Value::Number(_)) && !s.starts_with('-') {
                    format!("+{s}")
                } else {
                    s
                }
            }
            ('s', Value::Null) => "%!s(<nil>)".into(),
            ('s', v) => go_print(v),
            ('d', Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => {
                let s = number(n);
                if plus && !s.starts_with('-') {
                    format!("+{s}")
                } else {
                    s
                }
            }
            ('f' | 'F', Value::Number(n)) => {
                format!("{:.*}", prec.unwrap_or(6), n.as_f64().unwrap_or(0.0))
            }
            ('g', Value::Number(n)) => {
                format_float_g(n.as_f64().unwrap_or(0.0), prec.map_or(-1, |p| p as i32))
            }
            ('x', Value::Number(n)) if n.as_i64().is_some() => {
                format!("{:x}", n.as_i64().unwrap_or(0))
            }
            ('x', Value::String(s)) => hex_of(s.as_bytes()),
            ('X', Value::String(s)) => hex_of(s.as_bytes()).to_uppercase(),
            ('q', Value::String(s)) => go_quote(s),
            ('t', Value::Bool(b)) => b.to_string(),
            (verb, v) => format!("%!{verb}({}={})", go_type(v), go_print(v)),
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len >= w {
            out.push_str(&body);
        } else if left {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - len));
        } else if zero && matches!(arg, Value::Number(_)) {
            let (sign, digits) = match body.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(w - len));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(w - len));
            out.push_str(&body);
        }
    }
    if argi < args.len() {
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|v| format!("{}={}", go_type(v), go_print(v)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&go_print(a));
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(go_print).collect();
    format!("{}\n", parts.join(" "))
}
