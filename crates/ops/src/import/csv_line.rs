//! One line of CSV (RFC 4180 quoting: fields may be in `"`, a `"` inside written `""`). S3
//! Inventory writes every field quoted; the app's manifest may quote or not.

/// Splits one CSV line into its fields; `None` when a quote is left open.
pub(crate) fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut field));
            at_start = true;
        } else {
            field.push(c);
            at_start = false;
        }
    }
    if quoted {
        return None;
    }
    out.push(field);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn splits_quoted_and_plain_fields() {
        assert_eq!(
            fields(r#""b","a,b","1""2",x"#).unwrap(),
            vec!["b", "a,b", "1\"2", "x"]
        );
        assert_eq!(fields("a,,c").unwrap(), vec!["a", "", "c"]);
        assert_eq!(fields(r#""open"#), None);
    }
}
