//! Rendering speed of mapping files over a Partner Center referral: a 15-field mapping (the
//! shipped shape) and a 100-field one. Target: under 20 µs for 15 fields.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use coflow::expr::Mapping;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expr").join(path)
}

/// Field templates typical of a referral → Opportunity mapping, cycled to build bigger files.
const TEMPLATES: &[&str] = &[
    "{{ source.name }}",
    "{{ source.details.dealValue }}",
    "{{ formatDateTime(source.details.closingDateTime, 'yyyy-MM-dd') }}",
    "{{ lookup('stage', source.status ~ '/' ~ source.substatus, 'Prospecting') }}",
    "{{ source.customerProfile.address.city }}",
    "{{ toUpper(source.customerProfile.address.country) }}",
    "{{ coalesce(opt(source, 'details', 'customerAction'), 'None') }}",
    "{{ first(source.customerProfile.team).email }}",
    "Referral {{ source.id }} ({{ source.status }})",
    "{{ concat(source.customerProfile.name, ' - ', source.name) }}",
];

fn generated(fields: usize) -> Arc<Mapping> {
    let mut yaml = String::from("target: Opportunity\nfields:\n");
    for i in 0..fields {
        yaml.push_str(&format!(
            "  Field_{i}__c: \"{}\"\n",
            TEMPLATES[i % TEMPLATES.len()].replace('"', "\\\"")
        ));
    }
    yaml.push_str("lookups:\n  stage:\n    Active/Accepted: Qualification\n");
    match Mapping::parse("generated", &yaml, Path::new("generated.yaml")) {
        Ok(m) => Arc::new(m),
        Err(e) => panic!("generated mapping: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(fixture("pc-referral.json")).expect("referral fixture");
    let referral: Value = serde_json::from_str(&text).expect("referral JSON");
    let shipped =
        Arc::new(Mapping::load(&fixture("mappings/referral_to_opportunity.yaml")).expect("mapping"));
    assert_eq!(shipped.field_names().count(), 15);
    let large = generated(100);
    shipped.render(&referral, None).expect("15-field mapping renders");
    large.render(&referral, None).expect("100-field mapping renders");

    c.bench_function("mapping_15_fields", |b| b.iter(|| shipped.render(black_box(&referral), None)));
    c.bench_function("mapping_100_fields", |b| b.iter(|| large.render(black_box(&referral), None)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
