"""Security primitives: password hashing, JWTs, opaque secret tokens. No I/O."""
