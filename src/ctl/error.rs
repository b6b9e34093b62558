//! detcdctl's error type: every failure carries etcdctl's exit code (ExitError 1,
//! ExitBadConnection 2, ExitInvalidInput 3, ExitBadFeature 4, ExitInterrupted 5,
//! ExitBadArgs 128) and the text etcdctl prints after `Error: `, including how gRPC statuses
//! are rendered (etcd server errors by their message, others as `rpc error: code = ...`),
//! and cobra's texts for command-line parse errors.

/// A command failure, printed as `Error: <text>` with etcdctl's exit code.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// ExitError (1).
    #[error("{0}")]
    Failed(String),
    /// ExitBadConnection (2).
    #[error("{0}")]
    BadConnection(String),
    /// ExitInvalidInput (3).
    #[error("{0}")]
    InvalidInput(String),
    /// ExitBadFeature (4).
    #[error("{0}")]
    BadFeature(String),
    /// ExitInterrupted (5).
    #[error("{0}")]
    Interrupted(String),
    /// ExitBadArgs (128).
    #[error("{0}")]
    BadArgs(String),
    /// Exit with a code, printing nothing more (the command already reported).
    #[error("exit status {0}")]
    Quiet(u8),
}

impl CtlError {
    /// The process exit code etcdctl uses for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Failed(_) => 1,
            CtlError::BadConnection(_) => 2,
            CtlError::InvalidInput(_) => 3,
            CtlError::BadFeature(_) => 4,
            CtlError::Interrupted(_) => 5,
            CtlError::BadArgs(_) => 128,
            CtlError::Quiet(code) => *code,
        }
    }

    /// Prints the error the way etcdctl's `ExitWithError` does.
    pub fn report(&self) {
        if !matches!(self, CtlError::Quiet(_)) {
            eprintln!("Error: {self}");
        }
    }

    /// Re-labels a failure's text with a different exit code class.
    pub fn with_code(self, make: fn(String) -> CtlError) -> CtlError {
        match self {
            CtlError::Quiet(c) => CtlError::Quiet(c),
            other => make(other.to_string()),
        }
    }
}

/// The error text a Go etcd client shows for a gRPC status.
pub fn status_text(s: &tonic::Status) -> String {
    let msg = s.message();
    if msg.starts_with("etcdserver: ") || msg.starts_with("mvcc: ") {
        return msg.to_string();
    }
    if s.code() == tonic::Code::DeadlineExceeded || s.code() == tonic::Code::Cancelled {
        return "context deadline exceeded".to_string();
    }
    format!("rpc error: code = {} desc = {}", code_name(s.code()), msg)
}

/// grpc-go's name for a status code.
fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Whether a status means "this endpoint is unreachable, try another one".
pub fn is_connection_failure(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Unavailable && !s.message().starts_with("etcdserver: ")
}

/// Cobra's text for a command-line parse error.
pub fn cobra_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let ctx = |k| match e.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(" "),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = ctx(ContextKind::InvalidArg);
            if let Some(long) = arg.strip_prefix("--") {
                format!("unknown flag: --{}", long.split('=').next().unwrap_or(""))
            } else {
                let c = arg.chars().nth(1).unwrap_or('-');
                format!("unknown shorthand flag: '{c}' in {arg}")
            }
        }
        ErrorKind::InvalidSubcommand => format!(
            "unknown command {} for \"etcdctl\"",
            crate::gofmt::quote(ctx(ContextKind::InvalidSubcommand).as_bytes())
        ),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let flag = ctx(ContextKind::InvalidArg);
            let flag = flag.split([' ', '=']).next().unwrap_or("").to_string();
            let value = ctx(ContextKind::InvalidValue);
            let reason = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "invalid syntax".to_string());
            format!(
                "invalid argument {} for {} flag: {reason}",
                crate::gofmt::quote(value.as_bytes()),
                crate::gofmt::quote(flag.as_bytes())
            )
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string(),
    }
}

/// Shorthand for command results.
pub type CtlResult<T = ()> = Result<T, CtlError>;
