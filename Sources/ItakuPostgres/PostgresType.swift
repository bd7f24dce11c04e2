/// A PostgreSQL type OID, as libpq reports it (`PQftype`) and takes it (`paramTypes`).
public struct PostgresType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let unknown = Self(rawValue: 0)
    public static let bool = Self(rawValue: 16)
    public static let bytea = Self(rawValue: 17)
    public static let name = Self(rawValue: 19)
    public static let int8 = Self(rawValue: 20)
    public static let int2 = Self(rawValue: 21)
    public static let int4 = Self(rawValue: 23)
    public static let text = Self(rawValue: 25)
    public static let oid = Self(rawValue: 26)
    public static let json = Self(rawValue: 114)
    public static let float4 = Self(rawValue: 700)
    public static let float8 = Self(rawValue: 701)
    public static let bpchar = Self(rawValue: 1042)
    public static let varchar = Self(rawValue: 1043)
    public static let date = Self(rawValue: 1082)
    public static let timestamp = Self(rawValue: 1114)
    public static let timestamptz = Self(rawValue: 1184)
    public static let uuid = Self(rawValue: 2950)
    public static let jsonb = Self(rawValue: 3802)
    public static let textArray = Self(rawValue: 1009)
    public static let varcharArray = Self(rawValue: 1015)
    public static let uuidArray = Self(rawValue: 2951)
    public static let int8Array = Self(rawValue: 1016)
    public static let int4Array = Self(rawValue: 1007)
    public static let byteaArray = Self(rawValue: 1001)
    public static let boolArray = Self(rawValue: 1000)

    public var description: String { "oid \(rawValue)" }
}

/// Wire format of a value: libpq's 0 (text) or 1 (binary).
public enum PostgresFormat: Int32, Sendable {
    case text = 0
    case binary = 1
}
