"""The newsletter's mail: addresses and tokens, the messages (confirmation, digest), SMTP, the digest job."""
