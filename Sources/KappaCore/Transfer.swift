/// Hands a non-Sendable value to another thread that becomes its only user while the
/// sender keeps no use of it (what `sending` says, for a Dispatch closure). Safe only
/// under that discipline; each use site states why it holds.
public struct Transfer<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
