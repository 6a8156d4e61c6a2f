//! What one run of the `cairn` binary did, shared by the tests that drive
//! the binary (`tests/cli`, `tests/aws_e2e.rs`, `tests/s3_state_cli.rs`).
#![allow(dead_code)]

use std::process::Output;

/// A finished `cairn` process: exit code and both outputs as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        self.code(0)
    }

    /// Index of the first stderr line containing `needle`.
    #[track_caller]
    pub fn line_of(&self, needle: &str) -> usize {
        self.stderr
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no stderr line with {needle:?}:\n{}", self.stderr))
    }
}
