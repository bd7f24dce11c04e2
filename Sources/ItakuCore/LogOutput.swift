import Foundation
import Glibc
import Synchronization

/// Where log lines go (standard error), written in batches: lines gather in memory and go out
/// in one write at most `interval` after they were logged, or at once when `limit` bytes have
/// gathered or a line is a warning or worse (with every line before it, in order). A request's
/// log line then costs no system call of its own. At exit the rest is written; a crash may
/// lose the info lines of its last `interval`, never a warning or an error.
public final class LogOutput: Sendable {
    public static let standardError = LogOutput(descriptor: 2)

    let descriptor: Int32
    let interval: Duration
    let limit: Int
    private let pending = Mutex<[UInt8]>([])
    /// Held while writing, so that batches go out in the order they were taken.
    private let writing = Mutex<Void>(())
    private let flusher = Mutex<Bool>(false)
    /// Signalled when a line arrives with nothing gathered: the flusher sleeps until then.
    private let gathered = DispatchSemaphore(value: 0)

    public init(descriptor: Int32, interval: Duration = .milliseconds(20), limit: Int = 64 * 1024) {
        self.descriptor = descriptor
        self.interval = interval
        self.limit = limit
    }

    /// Adds `line` (newline included); `urgent` writes it, and everything before it, now.
    public func write(_ line: String, urgent: Bool) {
        let (first, full) = pending.withLock { pending in
            let first = pending.isEmpty
            pending.append(contentsOf: line.utf8)
            return (first, pending.count >= limit)
        }
        if urgent || full {
            flush()
        } else if first {
            startFlusher()
            gathered.signal()
        }
    }

    /// Writes every line gathered so far.
    public func flush() {
        writing.withLock { _ in
            var bytes: [UInt8] = []
            pending.withLock { swap(&$0, &bytes) }
            var offset = 0
            var stalls = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { buffer in
                    Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                }
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && stalls < 50 {
                    // A non-blocking descriptor that is full: wait for room (at most about 5 s).
                    stalls += 1
                    var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, 100)
                } else {
                    return  // nowhere to write (closed, full disk): the lines are dropped
                }
            }
        }
    }

    /// One thread per output writes what gathered, `interval` after the first line of each
    /// batch arrived; idle, it sleeps. Started with the first line.
    private func startFlusher() {
        guard flusher.withLock({ started in
            defer { started = true }
            return !started
        }) else { return }
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        let thread = Thread { [self] in
            while true {
                gathered.wait()
                Thread.sleep(forTimeInterval: seconds)
                flush()
            }
        }
        thread.name = "itaku-log"
        thread.start()
        if descriptor == 2 { atexit { LogOutput.standardError.flush() } }
    }
}
