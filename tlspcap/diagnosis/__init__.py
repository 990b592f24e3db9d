"""From handshake facts to a verdict: outcome, cause, evidence, who must act, and the fix."""
