CREATE TABLE users (
    id {{pk}},
    name VARCHAR(200) NOT NULL,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role VARCHAR(20) NOT NULL,
    account_status VARCHAR(20) NOT NULL,
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE TABLE password_reset_otps (
    id {{pk}},
    user_id BIGINT NOT NULL,
    otp_hash VARCHAR(128) NOT NULL,
    expires_at VARCHAR(32) NOT NULL,
    used_at VARCHAR(32) NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at VARCHAR(32) NOT NULL
);
CREATE INDEX password_reset_otps_user ON password_reset_otps (user_id);
