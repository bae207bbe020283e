//! The error type of the crate: lexer and parser errors carry the 1-based column
//! (in characters) and the input text; evaluation errors name what went wrong.

/// Every error timex can return. Nothing in this crate panics on bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimexError {
    /// An unexpected character or an unusable number (original: TimexLexerError).
    #[error("timex lexer error at column {column} of {input:?}: {message}")]
    Lex {
        column: usize,
        message: String,
        input: String,
    },
    /// A syntax error, including a unit-less duration on a timestamp expression
    /// (original: TimexParserError).
    #[error("timex parse error at column {column} of {input:?}: {message}")]
    Parse {
        column: usize,
        message: String,
        input: String,
    },
    /// `$name` is not bound (original: TimexExpressionError).
    #[error("timex: variable ${0} is not defined")]
    UndefinedVariable(String),
    /// A range function other than hour, day, month, year (original: TimexExpressionError).
    #[error("timex: unknown function {0:?} (known: hour, day, month, year)")]
    UnknownFunction(String),
    /// A duration that cannot be applied here, e.g. a unit-less number on a timestamp
    /// (original: TimexExpressionError).
    #[error("timex: invalid duration: {0}")]
    InvalidDuration(String),
    /// The arithmetic produced an impossible date (Jan 31 + 1mo, Feb 29 + 1y, `@ 13mo`)
    /// or left the supported years 1..=9999 (original: ValueError / OverflowError).
    #[error("timex: invalid date: {0}")]
    InvalidDate(String),
}

impl TimexError {
    /// The original error class this error corresponds to: "lexer", "parser" or "expression".
    pub fn kind(&self) -> &'static str {
        match self {
            TimexError::Lex { .. } => "lexer",
            TimexError::Parse { .. } => "parser",
            _ => "expression",
        }
    }

    /// The column (1-based) of a lexer or parser error.
    pub fn column(&self) -> Option<usize> {
        match self {
            TimexError::Lex { column, .. } | TimexError::Parse { column, .. } => Some(*column),
            _ => None,
        }
    }
}
