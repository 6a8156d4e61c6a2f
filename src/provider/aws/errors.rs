//! Turning AWS SDK errors into [`ProviderError`]s: every message names the
//! service operation (`ecr:CreateRepository: …`), and the kind says whether
//! the engine should retry (throttling, 5xx, IAM propagation delays), treat
//! the object as gone, or stop.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::provider::{ErrorKind, ProviderError};

/// Error codes that mean "slow down and try again".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServerException",
    "ConcurrentModificationException",
    "ResourceConflictException",
    "OperationAbortedException",
    // EC2: a dependent object (a network interface, a subnet) is still
    // being released; deleting in dependency order, it soon will be.
    "DependencyViolation",
    "IncorrectState",
];

/// Error codes that mean "no such object".
const NOT_FOUND: &[&str] = &[
    "NoSuchEntity",
    "NoSuchBucket",
    "NotFound",
    "RepositoryNotFoundException",
    "ResourceNotFoundException",
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "StackNotFoundException",
];

/// Messages (substrings) that IAM's eventual consistency produces in other
/// services right after a role is created or changed.
const PROPAGATION: &[&str] = &[
    "cannot be assumed by Lambda",
    "role defined for the function cannot be assumed",
    "is not authorized to perform: sts:AssumeRole",
    "Role validation failed",
    "The provided execution role does not have permissions",
    "Unable to assume role",
    "does not have permission to assume",
];

/// Classifies an error code and message (status: the HTTP status, if any).
pub fn classify(code: Option<&str>, message: &str, status: Option<u16>) -> ErrorKind {
    if let Some(code) = code {
        if THROTTLING.contains(&code) {
            return ErrorKind::Retryable;
        }
        // EC2 spells not-found per object: InvalidVpcID.NotFound,
        // InvalidSubnetID.NotFound, InvalidGroup.NotFound…
        if NOT_FOUND.contains(&code) || code.ends_with(".NotFound") {
            return ErrorKind::NotFound;
        }
    }
    if PROPAGATION.iter().any(|p| message.contains(p)) {
        return ErrorKind::Retryable;
    }
    match status {
        Some(429) => ErrorKind::Retryable,
        Some(s) if s >= 500 => ErrorKind::Retryable,
        _ => ErrorKind::Fatal,
    }
}

/// Converts an SDK error of operation `op` (`"iam:CreateRole"`).
pub fn sdk<E>(op: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_string);
            let message = err
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            let kind = classify(code.as_deref(), &message, status);
            let text = match (&code, status) {
                (Some(code), _) => format!("{op}: {code}: {message}"),
                (None, Some(status)) => format!("{op}: HTTP {status}: {message}"),
                (None, None) => format!("{op}: {message}"),
            };
            ProviderError {
                kind,
                message: text,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ProviderError::retryable(format!("{op}: {}", DisplayErrorContext(&err)))
        }
        _ => ProviderError::fatal(format!("{op}: {}", DisplayErrorContext(&err))),
    }
}

/// The error code of an SDK error, if the service sent one.
pub fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.code()
}

/// Whether converting the error gives [`ErrorKind::NotFound`].
pub fn is_not_found(err: &ProviderError) -> bool {
    err.kind == ErrorKind::NotFound
}

/// A fatal error for a local problem (bad attribute, unreadable file).
pub fn invalid(op: &str, message: impl std::fmt::Display) -> ProviderError {
    ProviderError::fatal(format!("{op}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes_and_statuses() {
        assert_eq!(
            classify(Some("ThrottlingException"), "", Some(400)),
            ErrorKind::Retryable
        );
        assert_eq!(
            classify(Some("NoSuchEntity"), "", Some(404)),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(Some("InvalidParameterException"), "bad", Some(400)),
            ErrorKind::Fatal
        );
        assert_eq!(classify(None, "", Some(503)), ErrorKind::Retryable);
        assert_eq!(
            classify(Some("InvalidVpcID.NotFound"), "", Some(400)),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(
                Some("InvalidSubnet.Range"),
                "The CIDR is invalid",
                Some(400)
            ),
            ErrorKind::Fatal
        );
        assert_eq!(
            classify(
                Some("InvalidParameterValueException"),
                "The role defined for the function cannot be assumed by Lambda.",
                Some(400)
            ),
            ErrorKind::Retryable
        );
    }
}
