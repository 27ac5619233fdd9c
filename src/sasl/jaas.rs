//! JAAS login configuration files, as Java's `ConfigFile` reads them, far
//! enough for ZooKeeper's server section:
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_alice="alice-secret"
//!     user_super="super-secret";
//! };
//! ```
//!
//! Sections of login modules, each a class, a flag and `name=value`
//! options; `//` and `/* */` comments. Sans-IO: the caller reads the file
//! and names it in errors. Java's `${property}` expansion is not done.

use std::fmt;

/// One `Name { ... };` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub modules: Vec<LoginModule>,
}

/// One `class flag options... ;` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub line: usize,
    /// As written, in order (values hold passwords: not printed by Debug).
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for LoginModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("LoginModule")
            .field("class", &self.class)
            .field("flag", &self.flag)
            .field("line", &self.line)
            .field("option_names", &names)
            .finish()
    }
}

/// A syntax error, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for JaasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The flags Java accepts (case-insensitive).
const FLAGS: &[&str] = &["required", "requisite", "sufficient", "optional"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer { chars: text.chars().peekable(), line: 1 }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// The next token and the line it starts on; None at the end.
    fn next(&mut self) -> Result<Option<(Token, usize)>, JaasError> {
        loop {
            let Some(&c) = self.chars.peek() else { return Ok(None) };
            if c.is_whitespace() {
                self.bump();
                continue;
            }
            if c == '/' {
                let line = self.line;
                self.bump();
                match self.chars.peek() {
                    Some('/') => {
                        while let Some(c) = self.bump() {
                            if c == '\n' {
                                break;
                            }
                        }
                        continue;
                    }
                    Some('*') => {
                        self.bump();
                        let mut prev = '\0';
                        loop {
                            match self.bump() {
                                None => return Err(JaasError { line, message: "unterminated /* comment".into() }),
                                Some('/') if prev == '*' => break,
                                Some(c) => prev = c,
                            }
                        }
                        continue;
                    }
                    _ => return Err(JaasError { line, message: "unexpected '/'".into() }),
                }
            }
            let line = self.line;
            if c == '"' {
                self.bump();
                let mut value = String::new();
                loop {
                    match self.bump() {
                        None => return Err(JaasError { line, message: "unterminated quoted string".into() }),
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some(escaped) => value.push(escaped),
                            None => return Err(JaasError { line, message: "unterminated quoted string".into() }),
                        },
                        Some(c) => value.push(c),
                    }
                }
                return Ok(Some((Token::Quoted(value), line)));
            }
            if matches!(c, '{' | '}' | ';' | '=') {
                self.bump();
                return Ok(Some((Token::Punct(c), line)));
            }
            if is_word_char(c) {
                let mut word = String::new();
                while let Some(&c) = self.chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    word.push(c);
                    self.bump();
                }
                return Ok(Some((Token::Word(word), line)));
            }
            return Err(JaasError { line, message: format!("unexpected character {c:?}") });
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '$' | '.' | '-' | '*' | '@' | ':' | '+' | '%')
}

fn describe(token: &Option<(Token, usize)>) -> String {
    match token {
        None => "the end of the file".into(),
        Some((Token::Word(w), _)) => format!("{w:?}"),
        Some((Token::Quoted(q), _)) => format!("a quoted string ({} chars)", q.chars().count()),
        Some((Token::Punct(p), _)) => format!("'{p}'"),
    }
}

/// Parses a whole JAAS file. A section name given twice is an error (Java
/// merges them; zoocore would rather say so).
pub fn parse(text: &str) -> Result<Vec<Section>, JaasError> {
    let mut lexer = Lexer::new(text);
    let mut sections: Vec<Section> = Vec::new();
    loop {
        let (name, line) = match lexer.next()? {
            None => return Ok(sections),
            Some((Token::Word(name), line)) => (name, line),
            other => {
                let line = other.as_ref().map(|(_, l)| *l).unwrap_or(lexer.line);
                return Err(JaasError {
                    line,
                    message: format!("expected a section name, found {}", describe(&other)),
                });
            }
        };
        if let Some(first) = sections.iter().find(|s| s.name == name) {
            return Err(JaasError {
                line,
                message: format!("section {name} is given twice (first on line {})", first.line),
            });
        }
        expect_punct(&mut lexer, '{', &format!("after section name {name}"))?;
        let mut modules = Vec::new();
        loop {
            let token = lexer.next()?;
            let (class, module_line) = match token {
                Some((Token::Punct('}'), _)) => break,
                Some((Token::Word(class), l)) => (class, l),
                other => {
                    let l = other.as_ref().map(|(_, l)| *l).unwrap_or(lexer.line);
                    return Err(JaasError {
                        line: l,
                        message: format!(
                            "expected a login module class or '}}' in section {name}, found {}",
                            describe(&other)
                        ),
                    });
                }
            };
            let flag = match lexer.next()? {
                Some((Token::Word(flag), _)) if FLAGS.contains(&flag.to_ascii_lowercase().as_str()) => flag,
                other => {
                    let l = other.as_ref().map(|(_, l)| *l).unwrap_or(lexer.line);
                    return Err(JaasError {
                        line: l,
                        message: format!(
                            "expected a control flag (required, requisite, sufficient, optional) after {class}, found {}",
                            describe(&other)
                        ),
                    });
                }
            };
            let mut options = Vec::new();
            loop {
                match lexer.next()? {
                    Some((Token::Punct(';'), _)) => break,
                    Some((Token::Word(key), l)) => {
                        expect_punct(&mut lexer, '=', &format!("after option {key}"))?;
                        let value = match lexer.next()? {
                            Some((Token::Quoted(v), _)) | Some((Token::Word(v), _)) => v,
                            other => {
                                return Err(JaasError {
                                    line: other.as_ref().map(|(_, l)| *l).unwrap_or(l),
                                    message: format!("expected a value for option {key}, found {}", describe(&other)),
                                })
                            }
                        };
                        options.push((key, value));
                    }
                    other => {
                        let l = other.as_ref().map(|(_, l)| *l).unwrap_or(lexer.line);
                        return Err(JaasError {
                            line: l,
                            message: format!(
                                "expected an option name=value or ';' after {class}, found {}",
                                describe(&other)
                            ),
                        });
                    }
                }
            }
            modules.push(LoginModule { class, flag, line: module_line, options });
        }
        expect_punct(&mut lexer, ';', &format!("after the '}}' of section {name}"))?;
        sections.push(Section { name, line, modules });
    }
}

fn expect_punct(lexer: &mut Lexer<'_>, want: char, context: &str) -> Result<(), JaasError> {
    let token = lexer.next()?;
    match token {
        Some((Token::Punct(c), _)) if c == want => Ok(()),
        other => {
            let line = other.as_ref().map(|(_, l)| *l).unwrap_or(lexer.line);
            Err(JaasError { line, message: format!("expected '{want}' {context}, found {}", describe(&other)) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_harness_file() {
        let text = "\nServer {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n    user_super=\"super_secret\"\n    user_jaasuser=\"jaas_password\";\n};";
        let sections = parse(text).unwrap();
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].name, "Server");
        assert_eq!(sections[0].line, 2);
        let module = &sections[0].modules[0];
        assert_eq!(module.class, "org.apache.zookeeper.server.auth.DigestLoginModule");
        assert_eq!(module.flag, "required");
        assert_eq!(
            module.options,
            vec![("user_super".into(), "super_secret".into()), ("user_jaasuser".into(), "jaas_password".into())]
        );
    }

    #[test]
    fn comments_several_sections_and_escapes() {
        let text = "// top\nClient { a.B optional username=\"u\" password=p; };\n/* a\n block */ Server {\n x.Y REQUIRED user_a=\"q\\\"uote\"; z.W sufficient; };\n";
        let sections = parse(text).unwrap();
        assert_eq!(sections.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Client", "Server"]);
        assert_eq!(sections[1].line, 4);
        assert_eq!(sections[1].modules[0].options, vec![("user_a".into(), "q\"uote".into())]);
        assert_eq!(sections[1].modules[1].line, 5);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("Server {\n a.B required user_x=\"y\"\n};", 3, "expected an option"),
            ("Server {\n a.B mandatory;\n};", 2, "control flag"),
            ("Server {\n a.B required;\n}", 3, "expected ';'"),
            ("Server {\n a.B required user_x=;\n};", 2, "expected a value"),
            ("Server {\n a.B required user_x=\"y;\n};", 2, "unterminated quoted"),
            ("S { a.B required; };\nS { a.B required; };", 2, "given twice (first on line 1)"),
            ("/* open", 1, "unterminated /*"),
            ("\n\n{", 3, "expected a section name"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }
}
