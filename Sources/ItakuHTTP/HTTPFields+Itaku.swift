import HTTPTypes

extension HTTPFields {
    /// The value of the field `name` exactly as `self[name]` gives it (repeated fields joined
    /// with ", "), without the generic joining for the usual case of one field. Every request
    /// reads several headers this way.
    func value(_ name: HTTPField.Name) -> String? {
        let values = self[values: name]
        switch values.count {
        case 0: return nil
        case 1: return values[0]
        default: return self[name]
        }
    }
}
