import KappaCore
@testable import KappaHistory
import KappaLog

/// Reaches into the index to damage it the way only bad bytes could.
enum HistoryTestHooks {
    /// Commits an entry row with a valid CRC: `user` at `position`, whatever the log holds there.
    static func insertEntry(_ history: UserHistory, user: String, position: EntryPosition) throws {
        let rows = RowBatch()
        let keyCount = Array(user.utf8).withUnsafeBytes {
            HistoryKeys.appendEntry(user: $0, position: position, location: BatchLocation(segmentBase: .zero, position: .zero), into: rows.bytes)
        }
        rows.appended(from: 0, keyCount: keyCount)
        try history.store.commit(rows)
    }
}
