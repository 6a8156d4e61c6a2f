# Convenience recipes; each is a plain command that works without `just`.

# Run every test (fmt, clippy, core build, full suite with the moto server).
test:
    bash scripts/test

# The main job: the embedded demo stack, end to end.
demo:
    cargo run --no-default-features -- demo

# Iterate on the core without compiling the AWS SDK.
core-test:
    cargo test --no-default-features

# Regenerate the JSON Schema of the stack format.
schema:
    CAIRN_UPDATE_SCHEMA=1 cargo test --no-default-features --test diagnostics schema

# Benchmarks (see docs/benchmarks.md); e.g. `just bench --quick`.
bench *args:
    bash scripts/bench {{args}}
