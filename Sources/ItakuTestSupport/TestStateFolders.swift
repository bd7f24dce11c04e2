import Foundation
import Synchronization

/// State folders for tests (a keyring, data keys, an issuer's key): all inside one folder of
/// the test process, readable by its user alone and removed when the process exits, so that no
/// test's keys outlive its run in the system's temporary folder.
public enum TestStateFolders {
    private static let root = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-tests-\(getpid())").path
    private static let created = Mutex(false)

    /// The path of a new, not yet existing folder: Itaku creates its state directory itself.
    public static func make() throws -> String {
        try created.withLock { created in
            guard !created else { return }
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            atexit { try? FileManager.default.removeItem(atPath: TestStateFolders.root) }
            created = true
        }
        return root + "/state-\(UUID().uuidString)"
    }
}
