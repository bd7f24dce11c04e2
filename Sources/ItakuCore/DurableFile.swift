import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Secrets written to disk so that a crash or power loss leaves either the whole file or none:
/// written to a temporary name (created exclusively, mode 0600), flushed, linked to its name,
/// and the directory flushed, so that the new name survives too. Never replaces a file.
public enum DurableFile {
    public enum Outcome: Sendable, Equatable {
        /// The file was created with `contents`.
        case created
        /// A file of that name already existed; it was not touched.
        case exists
    }

    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "could not write \(path) durably" }
    }

    public static func create(_ path: String, contents: some DataProtocol) throws -> Outcome {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".\(UUID().uuidString.prefix(8)).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw WriteError(path: path) }
        defer { unlink(temporary) }
        let bytes = Array(contents)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, synced == 0 else { throw WriteError(path: path) }
        // link(2) fails if the name exists: whoever links first made the file.
        if link(temporary, path) != 0 {
            guard errno == EEXIST else { throw WriteError(path: path) }
            return .exists
        }
        try syncDirectory(directory.isEmpty ? "." : directory)
        return .created
    }

    /// Flushes a directory's entries (a name just linked or removed).
    public static func syncDirectory(_ directory: String) throws {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw WriteError(path: directory) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw WriteError(path: directory) }
    }
}
