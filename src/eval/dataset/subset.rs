//! CVQA's `Subset` column: the Python `str()` of a `(language, country)` tuple.

/// Parse CVQA's `Subset` column, the Python `str()` of a `(language, country)` tuple:
/// `('Japanese', 'Japan')`. Handles either quote style and the escapes Python's `repr` writes
/// (`\\`, `\'`, `\"`, `\n`, `\r`, `\t`, `\xhh`, `\uhhhh`, `\Uhhhhhhhh`). Returns `None` for anything
/// else (not a 2-tuple of string literals, trailing text, bad escape).
pub fn parse_subset(s: &str) -> Option<(String, String)> {
    let mut p = Parser { c: s.chars().collect(), i: 0 };
    p.ws();
    p.eat('(')?;
    p.ws();
    let a = p.string()?;
    p.ws();
    p.eat(',')?;
    p.ws();
    let b = p.string()?;
    p.ws();
    if p.peek() == Some(',') {
        p.i += 1;
        p.ws();
    }
    p.eat(')')?;
    p.ws();
    if p.i != p.c.len() {
        return None;
    }
    Some((a, b))
}

struct Parser {
    c: Vec<char>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }
    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.i += 1;
        Some(ch)
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, ch: char) -> Option<()> {
        (self.next()? == ch).then_some(())
    }
    fn hex(&mut self, n: usize) -> Option<char> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + self.next()?.to_digit(16)?;
        }
        char::from_u32(v)
    }
    fn string(&mut self) -> Option<String> {
        let q = self.next()?;
        if q != '\'' && q != '"' {
            return None;
        }
        let mut out = String::new();
        loop {
            match self.next()? {
                ch if ch == q => return Some(out),
                '\\' => match self.next()? {
                    '\\' => out.push('\\'),
                    '\'' => out.push('\''),
                    '"' => out.push('"'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'x' => out.push(self.hex(2)?),
                    'u' => out.push(self.hex(4)?),
                    'U' => out.push(self.hex(8)?),
                    // Python keeps unknown escapes verbatim.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                },
                ch => out.push(ch),
            }
        }
    }
}
