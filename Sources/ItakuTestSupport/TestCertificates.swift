import Foundation

/// A throwaway certificate authority and a server certificate for `localhost`, made with the
/// `openssl` command, for testing `sslmode=verify-full`.
public enum TestCertificates {
    /// Writes `ca.crt`, `server.crt` and `server.key` into `directory`; returns the CA's path.
    static func make(in directory: String) throws -> String {
        let ca = try makeAuthority(in: directory, name: "ca")
        try run("/usr/bin/openssl", [
            "req", "-new", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=localhost",
            "-keyout", "\(directory)/server.key", "-out", "\(directory)/server.csr",
        ])
        let extensions = "\(directory)/server.ext"
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: extensions, atomically: true, encoding: .utf8)
        try run("/usr/bin/openssl", [
            "x509", "-req", "-in", "\(directory)/server.csr", "-CA", ca, "-CAkey", "\(directory)/ca.key",
            "-CAcreateserial", "-days", "2", "-out", "\(directory)/server.crt", "-extfile", extensions,
        ])
        try run("/bin/chmod", ["600", "\(directory)/server.key"])
        return ca
    }

    /// A self-signed CA named `name` in `directory`; returns its certificate's path.
    public static func makeAuthority(in directory: String, name: String) throws -> String {
        try run("/usr/bin/openssl", [
            "req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-days", "2",
            "-subj", "/CN=Itaku test \(name)", "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).crt",
        ])
        return "\(directory)/\(name).crt"
    }
}
