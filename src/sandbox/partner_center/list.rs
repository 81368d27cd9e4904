//! Listing referrals: OData query options, paging with `$skiptoken` next links (reference §2.2).

use std::sync::Arc;

use axum::{
    Json,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    PartnerCenter,
    auth::{self, REFERRALS_RESOURCE},
    error::{ApiError, ReferralsError},
    model::is_field,
    odata,
    referrals::{expire_due, visible},
};

/// A list request, also carried inside `$skiptoken`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ListQuery {
    filter: Option<String>,
    orderby: Option<String>,
    select: Option<String>,
    top: Option<usize>,
    skip: usize,
    count: bool,
}

impl ListQuery {
    fn from_query(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut query = ListQuery::default();
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned();
        for (key, value) in pairs {
            match key.as_str() {
                "$skiptoken" => return decode_token(&value),
                "$filter" => query.filter = Some(value),
                "$orderby" => query.orderby = Some(value),
                "$select" => query.select = Some(value),
                "$top" => query.top = Some(number(&value, "$top")?),
                "$skip" => query.skip = number(&value, "$skip")?,
                "$count" => {
                    query.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ApiError::bad("$count must be true or false.", "$count")),
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

fn number(value: &str, name: &str) -> Result<usize, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad(format!("{name} must be a whole number of 0 or more, not '{value}'."), name)
    })
}

fn encode_token(query: &ListQuery) -> String {
    let json = serde_json::to_vec(query).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(token: &str) -> Result<ListQuery, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ApiError::bad(
                "The $skiptoken is not valid; follow @odata.nextLink exactly as returned.",
                "$skiptoken",
            )
        })
}

fn unknown_property(name: &str, option: &str) -> ApiError {
    ApiError::bad(
        format!("Could not find a property named '{name}' on type 'Referral' (in {option})."),
        option,
    )
}

/// A list request's options, parsed and checked against the Referral's properties.
struct Compiled {
    filter: Option<odata::Filter>,
    order: Vec<odata::OrderKey>,
    select: Vec<String>,
}

impl Compiled {
    fn new(query: &ListQuery) -> Result<Self, ApiError> {
        let filter = query.filter.as_deref().map(compile_filter).transpose()?;
        let order = match &query.orderby {
            Some(text) => odata::parse_orderby(text).map_err(|e| ApiError::bad(e.to_string(), "$orderby"))?,
            None => Vec::new(),
        };
        if let Some(key) = order.iter().find(|k| !k.path.first().is_some_and(|f| is_field(f))) {
            return Err(unknown_property(&key.path.join("/"), "$orderby"));
        }
        let select: Vec<String> = query
            .select
            .as_deref()
            .map(|s| s.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect())
            .unwrap_or_default();
        if let Some(field) = select.iter().find(|f| !is_field(f)) {
            return Err(unknown_property(field, "$select"));
        }
        Ok(Compiled { filter, order, select })
    }
}

fn compile_filter(text: &str) -> Result<odata::Filter, ApiError> {
    let filter =
        odata::parse_filter(text).map_err(|e| ApiError::bad(format!("Invalid $filter: {e}."), "$filter"))?;
    match filter.roots().into_iter().find(|r| !is_field(r)) {
        Some(root) => Err(unknown_property(&root, "$filter")),
        None => Ok(filter),
    }
}

/// `GET /v1.0/engagements/referrals` and the next-link path `GET /v1.0/referrals`.
pub async fn list(
    State(pc): State<Arc<PartnerCenter>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ReferralsError> {
    let caller = auth::authenticate(&pc, &headers, REFERRALS_RESOURCE)?;
    expire_due(&pc);
    let query = ListQuery::from_query(raw.as_deref())?;
    let compiled = Compiled::new(&query)?;
    let store = pc.lock_store();
    let mut items: Vec<&Value> = store
        .referrals
        .values()
        .filter(|r| visible(&caller, r))
        .filter(|r| compiled.filter.as_ref().is_none_or(|f| f.matches(r)))
        .collect();
    items.sort_by(|a, b| odata::compare_by(&compiled.order, a, b));
    Ok(Json(page(&pc, &query, &compiled, &items)).into_response())
}

/// One page of matching referrals, with a next link when the request wants more.
fn page(pc: &PartnerCenter, query: &ListQuery, compiled: &Compiled, items: &[&Value]) -> Value {
    let total = items.len();
    let start = query.skip.min(total);
    let budget = query.top.unwrap_or(usize::MAX);
    let take = (total - start).min(budget).min(pc.config().page_size.max(1));
    let value: Vec<Value> = items[start..start + take].iter().map(|r| project(r, &compiled.select)).collect();
    let mut body = Map::new();
    body.insert("@odata.context".into(), format!("{}/v1.0/$metadata#Referrals", pc.config().base()).into());
    body.insert("@odata.count".into(), (if query.count { total } else { value.len() }).into());
    body.insert("value".into(), Value::Array(value));
    if start + take < total && budget > take {
        let next = ListQuery { skip: start + take, top: query.top.map(|t| t - take), ..query.clone() };
        // The real next link leaves out `/engagements`; the sandbox serves that path too.
        body.insert(
            "@odata.nextLink".into(),
            format!("{}/v1.0/referrals?$skiptoken={}", pc.config().base(), encode_token(&next)).into(),
        );
    }
    Value::Object(body)
}

fn project(referral: &Value, select: &[String]) -> Value {
    if select.is_empty() {
        return referral.clone();
    }
    let Some(map) = referral.as_object() else {
        return referral.clone();
    };
    Value::Object(
        map.iter()
            .filter(|(k, _)| select.iter().any(|s| s == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptoken_round_trips() {
        let query = ListQuery {
            filter: Some("status eq 'New'".into()),
            top: Some(5),
            skip: 100,
            ..Default::default()
        };
        assert_eq!(decode_token(&encode_token(&query)).unwrap(), query);
        assert!(decode_token("not-a-token").is_err());
    }
}
