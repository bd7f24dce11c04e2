import Foundation

/// Runs a program and returns its output (stdout and stderr); throws with it when it fails.
///
/// Uses `posix_spawn` and `waitpid` directly. Output goes to a temporary file, not a pipe:
/// `pg_ctl start` leaves a server running that would inherit a pipe's write end and keep a
/// reader waiting for end-of-file forever.
@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let (status, text) = try runProgram(executable, arguments)
    guard status == 0 else {
        throw TestClusterError.commandFailed("\(executable) \(arguments.joined(separator: " ")): \(text)")
    }
    return text
}

/// The `itaku` executable built beside the test bundle (`swift build --build-tests` builds both).
public var itakuExecutable: String {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("itaku").path
}

/// Runs a program to its end: its exit status and its output (stdout and stderr).
public func runProgram(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("itaku-cmd-\(UUID()).out").path
    defer { unlink(outputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard spawned == 0 else {
        throw TestClusterError.commandFailed("\(executable): spawn failed (\(spawned))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    // WIFEXITED ? WEXITSTATUS : -1
    return (status & 0x7f == 0 ? (status >> 8) & 0xff : -1, text)
}

public enum TestClusterError: Error, CustomStringConvertible {
    case commandFailed(String)
    case noPostgres

    public var description: String {
        switch self {
        case .commandFailed(let text): "command failed: \(text)"
        case .noPostgres: "no PostgreSQL server binaries under /usr/lib/postgresql (install the postgresql package)"
        }
    }
}

/// A free TCP port on 127.0.0.1, found by binding port 0.
func freePort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
        }
    }
    guard bound else { throw TestClusterError.commandFailed("could not find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
