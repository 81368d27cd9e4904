//! Referral operations: list (with paging), get, create, update (read, change, PUT with
//! If-Match) and patch (JSON Patch).

use serde_json::{Value, json};

use crate::connectors::client::{self, Inputs, Reply, encode_component};
use crate::connectors::{ConnectorError, Effect, HttpClient, OperationOutput};

use super::{Api, ApiCall, PartnerCenterConnector, correlation_id, error_for};

/// OData options `list_referrals` passes through: input name and query name.
const LIST_OPTIONS: &[(&str, &str)] =
    &[("filter", "$filter"), ("orderby", "$orderby"), ("select", "$select"), ("expand", "$expand")];

/// Fields the service sets; a PUT body must not carry `links` (the docs say to remove it).
const NOT_PUT: &[&str] = &["links", "@odata.context"];

impl PartnerCenterConnector {
    fn referrals_url(&self) -> String {
        format!("{}/v1.0/engagements/referrals", self.settings.referrals_url)
    }

    fn referral_url(&self, id: &str) -> String {
        format!("{}/{}", self.referrals_url(), encode_component(id))
    }

    /// `list_referrals`: one GET per page, following `@odata.nextLink` until `max_items`.
    pub(super) async fn list_referrals(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let inputs = Inputs(inputs);
        let cap = inputs.opt_u64("max_items")?.unwrap_or(self.settings.max_items);
        let mut url = self.referrals_url();
        let query = list_query(&inputs)?;
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let cid = correlation_id(inputs.0);
        let mut items: Vec<Value> = Vec::new();
        let mut count = None;
        loop {
            let response =
                match self.send_ok(http, Api::Referrals, ApiCall::new("GET", url, &cid), Effect::Read).await?
                {
                    Ok(response) => response,
                    Err(held) => return Ok(held),
                };
            let page = response.body.clone();
            if count.is_none() {
                count = page.get("@odata.count").cloned();
            }
            let values = page.get("value").and_then(Value::as_array).ok_or_else(|| {
                ConnectorError::Transport("Partner Center answered a list without a `value` array".into())
            })?;
            let room = (cap as usize).saturating_sub(items.len());
            items.extend(values.iter().take(room).cloned());
            let next = page.get("@odata.nextLink").and_then(Value::as_str).filter(|s| !s.is_empty());
            let truncated = values.len() > room;
            if next.is_none() || items.len() >= cap as usize {
                let mut body = json!({"value": items});
                if let Some(count) = count {
                    body["@odata.count"] = count;
                }
                if let Some(next) = next.filter(|_| items.len() >= cap as usize || truncated) {
                    body["@odata.nextLink"] = Value::String(next.to_string());
                }
                return Ok(client::output(response, body));
            }
            url = follow_link(&self.settings.referrals_url, next.unwrap_or_default())?;
        }
    }

    /// `get_referral`: one GET.
    pub(super) async fn get_referral(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let id = Inputs(inputs).str("id")?;
        let call = ApiCall::new("GET", self.referral_url(&id), &correlation_id(inputs));
        match self.send_ok(http, Api::Referrals, call, Effect::Read).await? {
            Ok(response) => {
                let body = response.body.clone();
                Ok(client::output(response, body))
            }
            Err(held) => Ok(held),
        }
    }

    /// `create_referral`: one POST. When the POST may already have landed (`may_have_landed`)
    /// and the referral names its CRM record (`externalReferenceId`), one GET first: a referral
    /// already created for that record is answered instead of creating a second one.
    pub(super) async fn create_referral(
        &self,
        http: &HttpClient,
        inputs: &Value,
        may_have_landed: bool,
    ) -> Result<OperationOutput, ConnectorError> {
        let referral = Inputs(inputs).object("referral")?;
        for required in ["type", "customerProfile", "consent", "details"] {
            if !referral.contains_key(required) {
                return Err(ConnectorError::InvalidInput(format!(
                    "`referral.{required}` is required by Partner Center to create a referral"
                )));
            }
        }
        let external_id =
            referral.get("externalReferenceId").and_then(Value::as_str).filter(|id| !id.is_empty());
        if let (true, Some(external_id)) = (may_have_landed, external_id) {
            if let Some(created) = self.created_for(http, inputs, external_id).await? {
                return Ok(created);
            }
        }
        let call =
            ApiCall::new("POST", self.referrals_url(), &correlation_id(inputs)).body(Value::Object(referral));
        match self.send_ok(http, Api::Referrals, call, Effect::Write).await? {
            Ok(response) => {
                let body = response.body.clone();
                Ok(client::output(response, body))
            }
            Err(held) => Ok(held),
        }
    }

    /// The referral created for CRM record `external_id`, if there is one: the newest whose
    /// `externalReferenceId` is that id. Filtering on that field is not in Partner Center's
    /// documented examples [inferred]; an error answer counts as not found.
    async fn created_for(
        &self,
        http: &HttpClient,
        inputs: &Value,
        external_id: &str,
    ) -> Result<Option<OperationOutput>, ConnectorError> {
        let filter = format!("externalReferenceId eq '{}'", external_id.replace('\'', "''"));
        let url = format!(
            "{}?$filter={}&$orderby={}&$top=1",
            self.referrals_url(),
            encode_component(&filter),
            encode_component("createdDateTime desc")
        );
        let call = ApiCall::new("GET", url, &correlation_id(inputs));
        let Ok(Ok(response)) = self.send_ok(http, Api::Referrals, call, Effect::Read).await else {
            return Ok(None);
        };
        let found =
            response.body.get("value").and_then(Value::as_array).and_then(|list| list.first()).cloned();
        Ok(found.map(|referral| client::output(response, referral)))
    }

    /// `update_referral`: GET, merge `changes`, PUT with If-Match; on 412 once more from the GET.
    /// Nothing is written when the referral already carries the changes. A `current` input (the
    /// referral as just read, with its eTag) saves the first GET.
    pub(super) async fn update_referral(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let id = Inputs(inputs).str("id")?;
        let changes = Value::Object(Inputs(inputs).object("changes")?);
        let cid = correlation_id(inputs);
        let url = self.referral_url(&id);
        let mut given = Inputs(inputs)
            .get("current")
            .filter(|c| c.get("id").and_then(Value::as_str) == Some(id.as_str()) && c.get("eTag").is_some())
            .cloned();
        let mut conflicts = 0;
        loop {
            let (current, status) = match given.take() {
                Some(current) => (current, None),
                None => {
                    let call = ApiCall::new("GET", url.clone(), &cid);
                    match self.send_ok(http, Api::Referrals, call, Effect::Read).await? {
                        Ok(response) => (response.body, Some(response.status)),
                        Err(held) => return Ok(held),
                    }
                }
            };
            let mut merged = current.clone();
            merge(&mut merged, &changes);
            if merged == current {
                return Ok(OperationOutput { status, body: current, ..Default::default() });
            }
            let etag = current.get("eTag").and_then(Value::as_str).ok_or_else(|| {
                ConnectorError::Transport(format!("referral {id} has no eTag; cannot update it safely"))
            })?;
            let updated = put_body(&current, &changes);
            // The eTag string carries its own quotes; it is sent verbatim.
            let put =
                ApiCall::new("PUT", url.clone(), &cid).header("If-Match", etag.to_string()).body(updated);
            match self.send(http, Api::Referrals, put, Effect::Write).await? {
                Reply::HeldBack(request) => return Ok(client::dry_run_output(&[request])),
                Reply::Answered(response) if response.status == 412 && conflicts == 0 => conflicts += 1,
                Reply::Answered(response) if (200..300).contains(&response.status) => {
                    let body = response.body.clone();
                    return Ok(client::output(response, body));
                }
                Reply::Answered(response) => return Err(error_for(&response)),
            }
        }
    }

    /// `patch_referral`: one PATCH with `replace`/`add` operations.
    pub(super) async fn patch_referral(
        &self,
        http: &HttpClient,
        inputs: &Value,
    ) -> Result<OperationOutput, ConnectorError> {
        let args = Inputs(inputs);
        let id = args.str("id")?;
        let operations = patch_operations(args.array("operations")?)?;
        let representation = args.opt_bool("return_representation")?.unwrap_or(true);
        let mut call =
            ApiCall::new("PATCH", self.referral_url(&id), &correlation_id(inputs)).body(operations);
        if let Some(etag) = args.opt_str("etag")? {
            call = call.header("If-Match", etag);
        }
        if representation {
            call = call.header("Prefer", "return=representation".to_string());
        }
        match self.send_ok(http, Api::Referrals, call, Effect::Write).await? {
            Ok(response) => {
                let body = if response.status == 204 { Value::Null } else { response.body.clone() };
                Ok(client::output(response, body))
            }
            Err(held) => Ok(held),
        }
    }
}

/// The OData query string of a list call (values percent-encoded, `$` names kept).
fn list_query(inputs: &Inputs<'_>) -> Result<String, ConnectorError> {
    let mut parts = Vec::new();
    for (input, name) in LIST_OPTIONS {
        if let Some(value) = inputs.opt_str(input)? {
            parts.push(format!("{name}={}", encode_component(&value)));
        }
    }
    for (input, name) in [("top", "$top"), ("skip", "$skip")] {
        if let Some(value) = inputs.opt_u64(input)? {
            parts.push(format!("{name}={value}"));
        }
    }
    if let Some(count) = inputs.opt_bool("count")? {
        parts.push(format!("$count={count}"));
    }
    Ok(parts.join("&"))
}

/// The next-page URL as given, refusing any other host (the token must not leak) and
/// never downgrading https to http.
fn follow_link(base: &str, link: &str) -> Result<String, ConnectorError> {
    let base =
        url::Url::parse(base).map_err(|e| ConnectorError::InvalidInput(format!("bad base URL: {e}")))?;
    let mut next = base
        .join(link)
        .map_err(|e| ConnectorError::Transport(format!("Partner Center sent an unusable next link: {e}")))?;
    if next.host_str() != base.host_str() {
        return Err(ConnectorError::Transport(format!(
            "Partner Center sent a next link to another host ({}); not following it",
            next.host_str().unwrap_or("none")
        )));
    }
    if base.scheme() == "https" && next.scheme() == "http" {
        let port = next.port();
        next.set_scheme("https").map_err(|_| ConnectorError::Transport("cannot upgrade next link".into()))?;
        if port.is_none() {
            let _ = next.set_port(None);
        }
    }
    if next.port_or_known_default() != base.port_or_known_default() {
        return Err(ConnectorError::Transport(
            "Partner Center sent a next link to another port; not following it".into(),
        ));
    }
    Ok(next.to_string())
}

/// Merges `changes` into `target`: objects field by field, anything else replaced.
fn merge(target: &mut Value, changes: &Value) {
    match (target, changes) {
        (Value::Object(target), Value::Object(changes)) => {
            for (key, change) in changes {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && change.is_object() => merge(existing, change),
                    _ => {
                        target.insert(key.clone(), change.clone());
                    }
                }
            }
        }
        (target, changes) => *target = changes.clone(),
    }
}

/// Checks JSON Patch operations: only `replace` (the default) and `add`, paths starting with
/// `/`, and status with substatus together.
fn patch_operations(operations: Vec<Value>) -> Result<Value, ConnectorError> {
    if operations.is_empty() {
        return Err(ConnectorError::InvalidInput("`operations` must not be empty".into()));
    }
    let mut checked = Vec::with_capacity(operations.len());
    let mut paths = Vec::new();
    for (index, operation) in operations.into_iter().enumerate() {
        let Value::Object(mut map) = operation else {
            return Err(ConnectorError::InvalidInput(format!(
                "`operations[{index}]` must be an object {{op, path, value}}"
            )));
        };
        let op = map.get("op").and_then(Value::as_str).unwrap_or("replace").to_string();
        if op != "replace" && op != "add" {
            return Err(ConnectorError::InvalidInput(format!(
                "`operations[{index}].op` is `{op}`; Partner Center supports only `replace` and `add`"
            )));
        }
        let path = map.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
        if !path.starts_with('/') {
            return Err(ConnectorError::InvalidInput(format!(
                "`operations[{index}].path` must start with `/`"
            )));
        }
        map.insert("op".into(), Value::String(op));
        paths.push(path);
        checked.push(Value::Object(map));
    }
    let has = |p: &str| paths.iter().any(|x| x == p);
    if has("/status") != has("/substatus") {
        return Err(ConnectorError::InvalidInput("change `/status` and `/substatus` together".into()));
    }
    Ok(Value::Array(checked))
}

/// A referral body for PUT: the current one with `changes` merged and read-only parts removed.
pub fn put_body(current: &Value, changes: &Value) -> Value {
    let mut updated = current.clone();
    merge(&mut updated, changes);
    if let Value::Object(map) = &mut updated {
        for key in NOT_PUT {
            map.remove(*key);
        }
    }
    updated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_encodes_values_and_keeps_dollar_names() {
        let inputs = json!({"filter": "status eq 'New' and direction eq 'Incoming'", "orderby": "updatedDateTime desc", "top": 50, "count": true});
        let query = list_query(&Inputs(&inputs)).unwrap();
        assert_eq!(
            query,
            "$filter=status%20eq%20%27New%27%20and%20direction%20eq%20%27Incoming%27&$orderby=updatedDateTime%20desc&$top=50&$count=true"
        );
    }

    #[test]
    fn next_links_are_followed_on_the_same_host_only() {
        let sample: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/connectors/pc-referral-list.json"))
                .unwrap();
        let link = sample["@odata.nextLink"].as_str().unwrap();
        let next = follow_link("https://api.partner.microsoft.com", link).unwrap();
        assert_eq!(next, "https://api.partner.microsoft.com/v1.0/referrals?$skiptoken=k181pEdP0ykypkieJfcxX");
        assert_eq!(
            follow_link("http://127.0.0.1:9000", "/v1.0/x?$skiptoken=a").unwrap(),
            "http://127.0.0.1:9000/v1.0/x?$skiptoken=a"
        );
        assert!(follow_link("https://api.partner.microsoft.com", "https://evil.example/steal").is_err());
        assert!(follow_link("http://127.0.0.1:9000", "http://127.0.0.1:9001/x").is_err());
    }

    #[test]
    fn put_body_merges_changes_and_drops_links() {
        let sample: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/connectors/pc-referral.json"))
                .unwrap();
        let body = put_body(&sample, &json!({"externalReferenceId": "006XYZ", "details": {"dealValue": 5}}));
        assert!(body.get("links").is_none());
        assert_eq!(body["externalReferenceId"], "006XYZ");
        assert_eq!(body["details"]["dealValue"], 5);
        assert_eq!(body["details"]["currency"], sample["details"]["currency"]);
        assert_eq!(body["eTag"], sample["eTag"]);
    }

    #[test]
    fn patch_operations_are_checked() {
        let ok = patch_operations(vec![json!({"path": "/details/dealValue", "value": "10000"})]).unwrap();
        assert_eq!(ok[0]["op"], "replace");
        assert!(patch_operations(vec![json!({"op": "remove", "path": "/notes"})]).is_err());
        assert!(
            patch_operations(vec![json!({"op": "replace", "path": "/status", "value": "Closed"})]).is_err()
        );
        assert!(
            patch_operations(vec![
                json!({"op": "replace", "path": "/status", "value": "Closed"}),
                json!({"op": "replace", "path": "/substatus", "value": "Won"})
            ])
            .is_ok()
        );
    }
}
