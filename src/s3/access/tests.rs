use super::*;

#[test]
fn query_values_are_decoded() {
    assert_eq!(
        url_query_value("a=1&X-Amz-Security-Token=ab%2Bc%3D", "X-Amz-Security-Token").as_deref(),
        Some("ab+c=")
    );
    assert_eq!(url_query_value("a=1", "b"), None);
}
