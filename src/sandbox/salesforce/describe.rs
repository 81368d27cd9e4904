//! describeGlobal, basic info and full describe bodies, shaped like the real ones so strict
//! clients (rustforce requires every boolean) can deserialise them.

use serde_json::{Map, Value, json};

use super::schema::{FieldDef, FieldType, ObjectDef, Schema};

/// `GET /sobjects`.
pub fn describe_global(schema: &Schema, version: &str) -> Value {
    let sobjects: Vec<Value> = schema.objects.iter().map(|o| global_entry(o, version)).collect();
    json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
}

/// One describeGlobal entry (also the `objectDescribe` of basic info).
pub fn global_entry(object: &ObjectDef, version: &str) -> Value {
    let base = format!("/services/data/{version}/sobjects/{}", object.name);
    let standard = !object.custom;
    json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": true,
        "custom": object.custom,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": true,
        "deprecatedAndHidden": false,
        "feedEnabled": standard,
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": object.key_prefix,
        "label": object.label,
        "labelPlural": object.label_plural,
        "layoutable": true,
        "mergeable": matches!(object.name.as_str(), "Account" | "Contact" | "Lead"),
        "mruEnabled": true,
        "name": object.name,
        "queryable": true,
        "replicateable": true,
        "retrieveable": true,
        "searchable": true,
        "triggerable": true,
        "undeletable": true,
        "updateable": true,
        "urls": {
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        },
    })
}

/// `GET /sobjects/X/describe`.
pub fn describe(schema: &Schema, object: &ObjectDef, version: &str, instance_url: &str) -> Value {
    let mut body = match global_entry(object, version) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let base = format!("/services/data/{version}/sobjects/{}", object.name);
    body.insert(
        "urls".into(),
        json!({
            "compactLayouts": format!("{base}/describe/compactLayouts"),
            "rowTemplate": format!("{base}/{{ID}}"),
            "approvalLayouts": format!("{base}/describe/approvalLayouts"),
            "uiDetailTemplate": format!("{instance_url}/{{ID}}"),
            "uiEditTemplate": format!("{instance_url}/{{ID}}/e"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "listviews": format!("{base}/listviews"),
            "describe": format!("{base}/describe"),
            "uiNewRecord": format!("{instance_url}/{}/e", object.key_prefix),
            "quickActions": format!("{base}/quickActions"),
            "layouts": format!("{base}/describe/layouts"),
            "sobject": base,
        }),
    );
    body.insert("compactLayoutable".into(), json!(true));
    body.insert("listviewable".into(), Value::Null);
    body.insert("lookupLayoutable".into(), Value::Null);
    body.insert("searchLayoutable".into(), json!(true));
    body.insert("networkScopeFieldName".into(), Value::Null);
    body.insert("sobjectDescribeOption".into(), json!("FULL"));
    body.insert(
        "supportedScopes".into(),
        json!([{"label": "All", "name": "everything"}, {"label": "My", "name": "mine"}]),
    );
    body.insert("actionOverrides".into(), json!([]));
    body.insert("namedLayoutInfos".into(), json!([]));
    body.insert("childRelationships".into(), Value::Array(child_relationships(schema, object)));
    body.insert(
        "recordTypeInfos".into(),
        json!([{
            "active": true, "available": true, "defaultRecordTypeMapping": true,
            "developerName": "Master", "master": true, "name": "Master",
            "recordTypeId": "012000000000000AAA",
            "urls": {"layout": format!("{base}/describe/layouts/012000000000000AAA")},
        }]),
    );
    body.insert("fields".into(), Value::Array(object.fields.iter().map(field).collect()));
    Value::Object(body)
}

fn child_relationships(schema: &Schema, object: &ObjectDef) -> Vec<Value> {
    object
        .children
        .iter()
        .map(|rel| {
            let child = &schema.objects[rel.child];
            json!({
                "cascadeDelete": rel.cascade_delete,
                "childSObject": child.name,
                "deprecatedAndHidden": false,
                "field": child.fields[rel.field].name,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": rel.name,
                "restrictedDelete": false,
            })
        })
        .collect()
}

/// One `fields[]` entry with every key jsforce and rustforce know.
pub fn field(f: &FieldDef) -> Value {
    let t = f.ftype;
    let text = t.is_text() && !matches!(t, FieldType::Id | FieldType::Reference);
    let long_text = t == FieldType::Textarea && f.length > 255;
    let byte_length = match t {
        FieldType::Id | FieldType::Reference => 18,
        _ if text => f.length * 3,
        _ => 0,
    };
    let length = if text || matches!(t, FieldType::Id | FieldType::Reference) { f.length } else { 0 };
    let picklist: Vec<Value> = f
        .picklist
        .iter()
        .map(|v| {
            let is_default = f.default_picklist.as_deref() == Some(v.as_ref());
            json!({"active": true, "defaultValue": is_default, "label": v.as_ref(), "validFor": null, "value": v.as_ref()})
        })
        .collect();
    let mut first = json!({
        "aggregatable": !long_text,
        "aiPredictionField": false,
        "autoNumber": false,
        "byteLength": byte_length,
        "calculated": f.calculated && f.name != "Name",
        "calculatedFormula": null,
        "cascadeDelete": f.cascade_delete,
        "caseSensitive": false,
        "compoundFieldName": null,
        "controllerName": null,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": f.default_picklist.as_deref(),
        "defaultValueFormula": null,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": if t == FieldType::Int { f.precision } else { 0 },
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": f.external_id,
        "extraTypeInfo": null,
        "filterable": !long_text,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": !long_text && !matches!(t, FieldType::Double | FieldType::Currency | FieldType::Percent | FieldType::DateTime | FieldType::MultiPicklist),
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": t == FieldType::Id || f.external_id,
        "inlineHelpText": null,
        "label": f.label,
        "length": length,
        "mask": null,
    });
    let second = json!({
        "maskType": null,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": false,
        "nillable": f.nillable,
        "permissionable": f.nillable && f.createable,
        "picklistValues": picklist,
        "polymorphicForeignKey": f.reference_to.len() > 1,
        "precision": if matches!(t, FieldType::Double | FieldType::Currency | FieldType::Percent) { f.precision } else { 0 },
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship_name,
        "relationshipOrder": if f.cascade_delete && f.custom { Some(0) } else { None },
        "restrictedDelete": false,
        "restrictedPicklist": f.restricted,
        "scale": if matches!(t, FieldType::Double | FieldType::Currency | FieldType::Percent) { f.scale } else { 0 },
        "searchPrefilterable": false,
        "soapType": t.soap_type(),
        "sortable": !long_text,
        "type": t.name(),
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": false,
    });
    if let (Some(map), Value::Object(rest)) = (first.as_object_mut(), second) {
        map.extend(rest);
    }
    first
}
