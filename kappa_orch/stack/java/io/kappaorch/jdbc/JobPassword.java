package io.kappaorch.jdbc;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.Properties;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.postgresql.plugin.AuthenticationPlugin;
import org.postgresql.plugin.AuthenticationRequestType;
import org.postgresql.util.PSQLException;
import org.postgresql.util.PSQLState;

/**
 * The password of a kappa_orch job role, derived where the connection is made: the
 * hex HMAC-SHA256 of "kappa-job:" + the role's name under the key in the environment
 * variable KAPPA_JOB_KEY. The orchestrator derives the same password when it makes the
 * role (kappa_grants.job_role), so no password is ever written into a job's SQL text.
 *
 * <p>pgjdbc loads it for a URL with authenticationPluginClassName=io.kappaorch.jdbc.JobPassword.
 */
public final class JobPassword implements AuthenticationPlugin {
    static final String KEY_VARIABLE = "KAPPA_JOB_KEY";
    private final String user;

    public JobPassword(Properties info) {
        this.user = info.getProperty("user", "");
    }

    @Override
    public char[] getPassword(AuthenticationRequestType type) throws PSQLException {
        String key = System.getenv(KEY_VARIABLE);
        if (key == null || key.isEmpty()) {
            throw new PSQLException(
                KEY_VARIABLE + " is not set in this Flink process's environment, so the password of the"
                    + " job role " + user + " cannot be derived; give the TaskManagers (and the SQL"
                    + " Gateway) the same key as the orchestrator",
                PSQLState.INVALID_PASSWORD);
        }
        return derive(key, user).toCharArray();
    }

    static String derive(String key, String role) throws PSQLException {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            byte[] digest = mac.doFinal(("kappa-job:" + role).getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder(digest.length * 2);
            for (byte b : digest) {
                hex.append(String.format("%02x", b & 0xff));
            }
            return hex.toString();
        } catch (GeneralSecurityException e) {
            throw new PSQLException("HmacSHA256 is not available: " + e, PSQLState.UNEXPECTED_ERROR, e);
        }
    }
}
