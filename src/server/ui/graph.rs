//! A flow's actions laid out server-side and drawn as SVG.
//!
//! The layout is layered, one block at a time: the actions of a block go in rows by their
//! `run_after` depth (an action sits one row below its deepest predecessor), rows are ordered to
//! keep edges short (each action near the middle of its predecessors) and centred. Containers
//! (`scope`, `if`, `switch`, `foreach`, `until`) are boxes holding their branches side by side,
//! each branch laid out the same way, so nesting in the picture is nesting in the flow.
//!
//! Sizes are computed bottom-up and positions top-down, in whole pixels; text is fitted by an
//! average character width rather than measured, which is close enough for the UI's font.

use std::fmt::Write as _;

use super::status::Badge;
use crate::flow::{Action, ActionKind, Block, Flow, StatusSet};

const LEAF_W: i32 = 220;
const LEAF_H: i32 = 44;
/// A leaf with a status line under its type.
const MARKED_LEAF_H: i32 = 60;
const GAP_X: i32 = 20;
const GAP_Y: i32 = 34;
const PAD: i32 = 10;
const HEADER_H: i32 = 30;
const LABEL_H: i32 = 22;
const EMPTY_H: i32 = 26;
const MARGIN: i32 = 16;
const TRIGGER_H: i32 = 34;
/// Average advance of one character of the 13px UI font.
const CHAR_W: i32 = 7;
/// Room kept at the right of a container header for its status.
const HEADER_STATUS_W: i32 = 96;

/// A rectangle in picture coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
    /// Width.
    pub w: i32,
    /// Height.
    pub h: i32,
}

impl Rect {
    fn top(&self) -> (i32, i32) {
        (self.x + self.w / 2, self.y)
    }

    fn bottom(&self) -> (i32, i32) {
        (self.x + self.w / 2, self.y + self.h)
    }

    /// Whether `other` lies entirely inside this rectangle.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.x + other.w <= self.x + self.w
            && other.y + other.h <= self.y + self.h
    }
}

/// What a shape stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeKind {
    /// The flow's trigger.
    Trigger {
        /// Its type.
        kind: String,
    },
    /// An action without nested actions.
    Action {
        /// Action name.
        name: String,
        /// Its `type`.
        type_name: String,
    },
    /// An action holding branches or a body.
    Container {
        /// Action name.
        name: String,
        /// Its `type`.
        type_name: String,
    },
    /// One branch of a container (`then`, `case "x"`, ...), or an empty body.
    Branch {
        /// The branch's label; `None` for the only body of a scope or loop.
        label: Option<String>,
        /// Whether it holds no actions.
        empty: bool,
    },
}

/// A box of the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Where.
    pub rect: Rect,
    /// What.
    pub kind: ShapeKind,
}

/// A `run_after` edge (or the trigger's edge to a first action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Bottom centre of the predecessor.
    pub from: (i32, i32),
    /// Top centre of the successor.
    pub to: (i32, i32),
    /// The statuses it waits for, when not the default `succeeded`.
    pub label: Option<String>,
}

/// A flow laid out: shapes in drawing order (containers before what they hold) and edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Total width.
    pub width: i32,
    /// Total height.
    pub height: i32,
    /// Every box.
    pub shapes: Vec<Shape>,
    /// Every edge.
    pub edges: Vec<Edge>,
}

/// How the run page dresses one action of the picture.
#[derive(Debug, Clone, Default)]
pub struct Decoration {
    /// Its status.
    pub badge: Option<Badge>,
    /// Where the action links to.
    pub href: Option<String>,
}

/// Part of a picture with its origin at (0, 0).
#[derive(Debug, Default)]
struct Placed {
    w: i32,
    h: i32,
    shapes: Vec<Shape>,
    edges: Vec<Edge>,
    /// Tops of the actions that start when the block starts.
    starts: Vec<(i32, i32)>,
}

impl Placed {
    fn shift(&mut self, dx: i32, dy: i32) {
        for shape in &mut self.shapes {
            shape.rect.x += dx;
            shape.rect.y += dy;
        }
        for edge in &mut self.edges {
            edge.from = (edge.from.0 + dx, edge.from.1 + dy);
            edge.to = (edge.to.0 + dx, edge.to.1 + dy);
        }
        for start in &mut self.starts {
            *start = (start.0 + dx, start.1 + dy);
        }
    }

    fn absorb(&mut self, other: Placed) {
        self.shapes.extend(other.shapes);
        self.edges.extend(other.edges);
    }
}

/// Lays a flow out; `marked` leaves room in every action for a status line.
pub fn layout(flow: &Flow, marked: bool) -> Picture {
    let mut body = place_block(&flow.root, marked);
    let trigger_w = (trigger_label(&flow.trigger.kind).chars().count() as i32 * CHAR_W + 30).max(LEAF_W);
    let width = body.w.max(trigger_w) + 2 * MARGIN;
    let trigger = Rect { x: (width - trigger_w) / 2, y: MARGIN, w: trigger_w, h: TRIGGER_H };
    body.shift((width - body.w) / 2, trigger.y + trigger.h + GAP_Y);
    let mut edges: Vec<Edge> =
        body.starts.iter().map(|&to| Edge { from: trigger.bottom(), to, label: None }).collect();
    edges.append(&mut body.edges);
    let mut shapes =
        vec![Shape { rect: trigger, kind: ShapeKind::Trigger { kind: flow.trigger.kind.clone() } }];
    shapes.append(&mut body.shapes);
    let height = if flow.root.actions.is_empty() {
        trigger.y + trigger.h + MARGIN
    } else {
        trigger.y + trigger.h + GAP_Y + body.h + MARGIN
    };
    Picture { width, height, shapes, edges }
}

fn trigger_label(kind: &str) -> String {
    format!("trigger: {kind}")
}

/// `run_after` depth of each action of a block: 0 for those that start with the block.
fn depths(block: &Block) -> Vec<usize> {
    fn depth_of(block: &Block, index: usize, memo: &mut [Option<usize>]) -> usize {
        if let Some(depth) = memo[index] {
            return depth;
        }
        // Compilation rejects cycles; the guard keeps a malformed graph from recursing forever.
        memo[index] = Some(0);
        let depth = block.actions[index]
            .run_after
            .iter()
            .filter(|pred| pred.action < block.actions.len())
            .map(|pred| depth_of(block, pred.action, memo) + 1)
            .max()
            .unwrap_or(0);
        memo[index] = Some(depth);
        depth
    }
    let mut memo = vec![None; block.actions.len()];
    (0..block.actions.len()).map(|index| depth_of(block, index, &mut memo)).collect()
}

/// Actions grouped in rows by depth, each row ordered by where its predecessors sit.
fn rows(block: &Block) -> Vec<Vec<usize>> {
    let depths = depths(block);
    let count = depths.iter().max().map_or(0, |deepest| deepest + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, depth) in depths.iter().enumerate() {
        rows[*depth].push(index);
    }
    // Relative position (0..1) of every placed action within its row.
    let mut position = vec![0.5_f64; block.actions.len()];
    for row in &mut rows {
        let key = |index: &usize| -> f64 {
            let preds = &block.actions[*index].run_after;
            if preds.is_empty() {
                return 0.5;
            }
            preds.iter().map(|pred| position.get(pred.action).copied().unwrap_or(0.5)).sum::<f64>()
                / preds.len() as f64
        };
        // A stable sort keeps written order among actions with the same predecessors.
        row.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let len = row.len() as f64;
        for (rank, index) in row.iter().enumerate() {
            position[*index] = (rank as f64 + 0.5) / len;
        }
    }
    rows
}

fn place_block(block: &Block, marked: bool) -> Placed {
    let mut items: Vec<Placed> = block.actions.iter().map(|action| place_action(action, marked)).collect();
    let rows = rows(block);
    let sizes: Vec<(i32, i32)> = items.iter().map(|item| (item.w, item.h)).collect();
    let row_width = |row: &Vec<usize>| -> i32 {
        row.iter().map(|&i| sizes[i].0).sum::<i32>() + GAP_X * (row.len() as i32 - 1).max(0)
    };
    let width = rows.iter().map(row_width).max().unwrap_or(0);
    let mut rects = vec![Rect { x: 0, y: 0, w: 0, h: 0 }; items.len()];
    let mut y = 0;
    for row in &rows {
        let mut x = (width - row_width(row)) / 2;
        for &index in row {
            let item = &mut items[index];
            item.shift(x, y);
            rects[index] = Rect { x, y, w: item.w, h: item.h };
            x += item.w + GAP_X;
        }
        y += row.iter().map(|&i| sizes[i].1).max().unwrap_or(0) + GAP_Y;
    }
    let mut placed = Placed { w: width, h: (y - GAP_Y).max(0), ..Placed::default() };
    for (index, action) in block.actions.iter().enumerate() {
        if action.run_after.is_empty() {
            placed.starts.push(rects[index].top());
        }
        for pred in &action.run_after {
            let Some(from) = rects.get(pred.action) else { continue };
            placed.edges.push(Edge {
                from: from.bottom(),
                to: rects[index].top(),
                label: status_label(pred.statuses),
            });
        }
    }
    for item in items {
        placed.absorb(item);
    }
    placed
}

/// The blocks of a container with their labels; `None` labels the only body of a scope or loop.
pub(crate) fn branches(kind: &ActionKind) -> Vec<(Option<String>, &Block)> {
    match kind {
        ActionKind::If { then, otherwise, .. } => {
            vec![(Some("then".to_string()), then), (Some("else".to_string()), otherwise)]
        }
        ActionKind::Switch { cases, default, .. } => cases
            .iter()
            .map(|(value, block)| (Some(format!("case {value}")), block))
            .chain([(Some("default".to_string()), default)])
            .collect(),
        _ => kind.blocks().into_iter().map(|block| (None, block)).collect(),
    }
}

fn place_action(action: &Action, marked: bool) -> Placed {
    let branches = branches(&action.kind);
    if branches.is_empty() {
        let leaf_h = if marked { MARKED_LEAF_H } else { LEAF_H };
        let rect = Rect { x: 0, y: 0, w: LEAF_W, h: leaf_h };
        let kind = ShapeKind::Action { name: action.name.clone(), type_name: action.type_name.clone() };
        return Placed { w: LEAF_W, h: leaf_h, shapes: vec![Shape { rect, kind }], ..Placed::default() };
    }
    let mut parts: Vec<Placed> =
        branches.into_iter().map(|(label, block)| place_branch(label, block, marked)).collect();
    let content_w = parts.iter().map(|p| p.w).sum::<i32>() + GAP_X * (parts.len() as i32 - 1);
    let content_h = parts.iter().map(|p| p.h).max().unwrap_or(0);
    // Wide enough for its header: name, type and, on run pages, the status.
    let header_chars = (action.name.chars().count() + action.type_name.chars().count() + 3) as i32;
    let header_w = header_chars * CHAR_W + 20 + if marked { HEADER_STATUS_W } else { 0 };
    let w = (content_w + 2 * PAD).max(LEAF_W).max(header_w);
    let h = HEADER_H + content_h + PAD;
    let kind = ShapeKind::Container { name: action.name.clone(), type_name: action.type_name.clone() };
    let mut placed =
        Placed { w, h, shapes: vec![Shape { rect: Rect { x: 0, y: 0, w, h }, kind }], ..Placed::default() };
    let mut x = (w - content_w) / 2;
    for part in &mut parts {
        part.shift(x, HEADER_H);
        x += part.w + GAP_X;
    }
    for part in parts {
        placed.absorb(part);
    }
    placed
}

fn place_branch(label: Option<String>, block: &Block, marked: bool) -> Placed {
    let mut inner = place_block(block, marked);
    let empty = block.actions.is_empty();
    if label.is_none() && !empty {
        return inner;
    }
    let label_h = if label.is_some() { LABEL_H } else { 0 };
    let inner_w = if empty { LEAF_W - 2 * PAD } else { inner.w };
    let inner_h = if empty { EMPTY_H } else { inner.h };
    let w = inner_w + 2 * PAD;
    let h = label_h + inner_h + PAD;
    inner.shift(PAD, label_h);
    let rect = Rect { x: 0, y: 0, w, h };
    let mut placed = Placed {
        w,
        h,
        shapes: vec![Shape { rect, kind: ShapeKind::Branch { label, empty } }],
        ..Placed::default()
    };
    placed.absorb(inner);
    placed
}

/// `None` for the default `[succeeded]`, else the statuses, e.g. `failed, timed_out`.
fn status_label(set: StatusSet) -> Option<String> {
    if set == StatusSet::SUCCEEDED {
        return None;
    }
    let names = [
        (set.succeeded, "succeeded"),
        (set.failed, "failed"),
        (set.skipped, "skipped"),
        (set.timed_out, "timed out"),
    ];
    Some(names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect::<Vec<_>>().join(", "))
}

impl Picture {
    /// The picture as an SVG element; `decorate` gives each action's status and link.
    pub fn svg(&self, title: &str, decorate: &dyn Fn(&str) -> Decoration) -> String {
        let mut out = String::with_capacity(4096 + 400 * self.shapes.len());
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="flow-graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="group" aria-label="{title}">"#,
            w = self.width,
            h = self.height,
            title = escape(title),
        );
        out.push_str(
            r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrowhead"/></marker></defs>"#,
        );
        // Boxes that hold others go under the edges, actions over them, so an edge never shows
        // through an action but stays visible inside a container.
        let holds =
            |shape: &&Shape| matches!(shape.kind, ShapeKind::Container { .. } | ShapeKind::Branch { .. });
        for shape in self.shapes.iter().filter(holds) {
            draw_shape(&mut out, shape, decorate);
        }
        out.push_str(r#"<g class="edges">"#);
        for edge in &self.edges {
            draw_edge(&mut out, edge);
        }
        out.push_str("</g>");
        for shape in self.shapes.iter().filter(|shape| !holds(shape)) {
            draw_shape(&mut out, shape, decorate);
        }
        out.push_str(r#"<g class="edge-labels">"#);
        for edge in &self.edges {
            if let Some(label) = &edge.label {
                let (x, y) = ((edge.from.0 + edge.to.0) / 2, (edge.from.1 + edge.to.1) / 2);
                let w = label.chars().count() as i32 * 6 + 10;
                let _ = write!(
                    out,
                    r#"<rect class="edge-label-bg" x="{}" y="{}" width="{w}" height="16" rx="3"/><text class="edge-label" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                    x - w / 2,
                    y - 8,
                    y + 4,
                    escape(label)
                );
            }
        }
        out.push_str("</g></svg>");
        out
    }
}

fn draw_edge(out: &mut String, edge: &Edge) {
    let (x1, y1) = edge.from;
    let (x2, y2) = edge.to;
    let bend = ((y2 - y1) / 2).max(12);
    let class = if edge.label.is_some() { "edge edge-conditional" } else { "edge" };
    let _ = write!(
        out,
        r#"<path class="{class}" d="M{x1},{y1} C{x1},{} {x2},{} {x2},{}" marker-end="url(#arrow)"/>"#,
        y1 + bend,
        y2 - bend,
        y2 - 1
    );
}

fn draw_shape(out: &mut String, shape: &Shape, decorate: &dyn Fn(&str) -> Decoration) {
    let Rect { x, y, w, h } = shape.rect;
    match &shape.kind {
        ShapeKind::Trigger { kind } => {
            let _ = write!(
                out,
                r#"<g class="node trigger"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{}"/><text x="{}" y="{}" text-anchor="middle">{}</text></g>"#,
                h / 2,
                x + w / 2,
                y + h / 2 + 5,
                escape(&trigger_label(kind))
            );
        }
        ShapeKind::Action { name, type_name } => {
            let decoration = decorate(name);
            open_node(out, name, type_name, "action", &decoration);
            let _ = write!(out, r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>"#);
            let max = (w - 16) / CHAR_W;
            let _ = write!(
                out,
                r#"<text class="name" x="{}" y="{}">{}</text><text class="type" x="{}" y="{}">{}</text>"#,
                x + 8,
                y + 19,
                escape(&fit(name, max)),
                x + 8,
                y + 36,
                escape(&fit(type_name, max + 2))
            );
            if let Some(badge) = decoration.badge {
                let _ = write!(
                    out,
                    r#"<text class="status" x="{}" y="{}">{} {}</text>"#,
                    x + 8,
                    y + 52,
                    badge.icon,
                    badge.label
                );
            }
            close_node(out, &decoration);
        }
        ShapeKind::Container { name, type_name } => {
            let decoration = decorate(name);
            open_node(out, name, type_name, "container", &decoration);
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8"/><rect class="header" x="{x}" y="{y}" width="{w}" height="{HEADER_H}" rx="8"/>"#
            );
            let room = if decoration.badge.is_some() { w - 20 - HEADER_STATUS_W } else { w - 20 };
            let _ = write!(
                out,
                r#"<text class="name" x="{}" y="{}">{}</text>"#,
                x + 10,
                y + 20,
                escape(&fit(&format!("{name} · {type_name}"), room / CHAR_W))
            );
            if let Some(badge) = decoration.badge {
                let _ = write!(
                    out,
                    r#"<text class="status" x="{}" y="{}" text-anchor="end">{} {}</text>"#,
                    x + w - 10,
                    y + 20,
                    badge.icon,
                    badge.label
                );
            }
            close_node(out, &decoration);
        }
        ShapeKind::Branch { label, empty } => {
            out.push_str(r#"<g class="branch">"#);
            if label.is_some() {
                let _ = write!(out, r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>"#);
            }
            if let Some(label) = label {
                let _ = write!(
                    out,
                    r#"<text class="branch-label" x="{}" y="{}">{}</text>"#,
                    x + 8,
                    y + 15,
                    escape(&fit(label, (w - 16) / CHAR_W))
                );
            }
            if *empty {
                let top = if label.is_some() { y + LABEL_H } else { y };
                let _ = write!(
                    out,
                    r#"<text class="empty" x="{}" y="{}" text-anchor="middle">no actions</text>"#,
                    x + w / 2,
                    top + 17
                );
            }
            out.push_str("</g>");
        }
    }
}

fn open_node(out: &mut String, name: &str, type_name: &str, class: &str, decoration: &Decoration) {
    if let Some(href) = &decoration.href {
        let _ = write!(out, r#"<a href="{}" class="node-link">"#, escape(href));
    }
    let status = decoration.badge.map_or("", |badge| badge.class);
    let _ =
        write!(out, r#"<g class="node {class} {status}"><title>{} ({})"#, escape(name), escape(type_name));
    if let Some(badge) = decoration.badge {
        let _ = write!(out, ": {}", badge.label);
    }
    out.push_str("</title>");
}

fn close_node(out: &mut String, decoration: &Decoration) {
    out.push_str("</g>");
    if decoration.href.is_some() {
        out.push_str("</a>");
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn fit(text: &str, max: i32) -> String {
    let max = usize::try_from(max.max(2)).unwrap_or(2);
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// Escapes text for SVG content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = r#"
name: nested
trigger: {type: manual}
actions:
  First:
    type: compose
    inputs: a
  Left:
    type: compose
    inputs: b
  Right:
    type: compose
    run_after: {First: [succeeded]}
    inputs: c
  Join:
    type: compose
    run_after: {Left: [succeeded], Right: [failed, skipped]}
    inputs: d
  Check:
    type: if
    condition: "{{ true }}"
    then:
      Yes:
        type: compose
        inputs: y
    else: {}
  Loop:
    type: foreach
    items: "{{ createArray(1, 2) }}"
    actions:
      Each:
        type: scope
        actions:
          Inner:
            type: compose
            inputs: "{{ item() }}"
"#;

    fn shape<'a>(picture: &'a Picture, wanted: &str) -> &'a Shape {
        picture
            .shapes
            .iter()
            .find(|shape| match &shape.kind {
                ShapeKind::Action { name, .. } | ShapeKind::Container { name, .. } => name == wanted,
                _ => false,
            })
            .unwrap_or_else(|| panic!("no shape for {wanted}"))
    }

    fn picture() -> Picture {
        layout(&crate::flow::load_str(NESTED).unwrap(), false)
    }

    #[test]
    fn actions_sit_below_their_predecessors_and_siblings_share_a_row() {
        let picture = picture();
        let first = shape(&picture, "First").rect;
        let left = shape(&picture, "Left").rect;
        let right = shape(&picture, "Right").rect;
        let join = shape(&picture, "Join").rect;
        assert!(left.y > first.y + first.h, "Left runs after First");
        assert_eq!(left.y, right.y, "Left and Right both wait for First only");
        assert!(left.x + left.w <= right.x || right.x + right.w <= left.x, "no overlap in a row");
        assert!(join.y > left.y + left.h);
    }

    #[test]
    fn containers_hold_their_branches_and_nested_actions() {
        let picture = picture();
        let check = shape(&picture, "Check").rect;
        assert!(check.contains(&shape(&picture, "Yes").rect));
        let branches: Vec<&Shape> =
            picture.shapes.iter().filter(|s| matches!(s.kind, ShapeKind::Branch { .. })).collect();
        let labels: Vec<Option<&str>> = branches
            .iter()
            .map(|s| match &s.kind {
                ShapeKind::Branch { label, .. } => label.as_deref(),
                _ => None,
            })
            .collect();
        assert_eq!(labels, [Some("then"), Some("else")]);
        assert!(branches.iter().all(|b| check.contains(&b.rect)));
        let loop_rect = shape(&picture, "Loop").rect;
        let each = shape(&picture, "Each").rect;
        assert!(loop_rect.contains(&each) && each.contains(&shape(&picture, "Inner").rect));
        assert!(picture.shapes.iter().all(|s| s.rect.x >= 0 && s.rect.x + s.rect.w <= picture.width));
        assert!(picture.shapes.iter().all(|s| s.rect.y >= 0 && s.rect.y + s.rect.h <= picture.height));
    }

    #[test]
    fn edges_follow_run_after_and_name_non_default_statuses() {
        let picture = picture();
        let right = shape(&picture, "Right").rect;
        let join = shape(&picture, "Join").rect;
        let edge = picture.edges.iter().find(|e| e.from == right.bottom() && e.to == join.top()).unwrap();
        assert_eq!(edge.label.as_deref(), Some("failed, skipped"));
        let first = shape(&picture, "First").rect;
        let trigger = picture.shapes[0].rect;
        assert!(picture.edges.iter().any(|e| e.from == trigger.bottom() && e.to == first.top()));
    }

    #[test]
    fn svg_escapes_names_and_shows_statuses_as_text() {
        let picture = Picture {
            width: 300,
            height: 100,
            shapes: vec![Shape {
                rect: Rect { x: 0, y: 0, w: LEAF_W, h: MARKED_LEAF_H },
                kind: ShapeKind::Action { name: "A<b>&".into(), type_name: "http".into() },
            }],
            edges: Vec::new(),
        };
        let svg = picture.svg("t", &|_| Decoration {
            badge: Some(Badge::for_action("failed")),
            href: Some("#a-1".into()),
        });
        assert!(svg.contains("A&lt;b&gt;&amp;"), "{svg}");
        assert!(!svg.contains("A<b>"), "{svg}");
        assert!(svg.contains(r##"<a href="#a-1""##), "{svg}");
        assert!(svg.contains("failed</text>"), "status as text, not colour only: {svg}");
        assert!(svg.contains("s-failed"), "{svg}");
    }

    #[test]
    fn long_names_are_fitted_with_an_ellipsis() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("a_very_long_action_name", 10), "a_very_lo…");
    }
}
