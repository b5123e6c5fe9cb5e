-- What makes a token invalid beyond users.token_version/role/account_status, kept so that
-- revocations survive restarts (every process loads them at start, see GetRevocationSnapshot).
CREATE TABLE revoked_tokens (
    jti VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at VARCHAR(32) NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
CREATE TABLE deleted_users (
    id BIGINT NOT NULL PRIMARY KEY,
    deleted_at VARCHAR(32) NOT NULL
);
CREATE INDEX deleted_users_at ON deleted_users (deleted_at);
CREATE INDEX users_updated ON users (updated_at);
