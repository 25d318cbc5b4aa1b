//! Small SVG charts drawn on the server: no chart library, nothing fetched, readable without
//! script, and each with a text alternative (`aria-label`, and a `<title>` per bar with its
//! exact value). Values are shown as given (money as its exact decimal text); only the bars'
//! geometry is computed in floating point.

use std::fmt::Write;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use heatbill_engine::text::html as esc;

/// One bar: its label (a date, a bucket), its value for the geometry and its text.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Under the bar (every few bars, when many).
    pub label: String,
    /// The bar's height, relative to the others.
    pub value: f64,
    /// The exact value, shown in the bar's title.
    pub text: String,
    /// A CSS class (`alt`, `bad`) for a bar that means something else.
    pub class: &'static str,
}

impl Bar {
    /// A bar of a decimal amount.
    pub fn money(label: impl Into<String>, amount: Decimal) -> Bar {
        Bar {
            label: label.into(),
            value: amount.to_f64().unwrap_or(0.0).max(0.0),
            text: amount.round_dp(2).to_string(),
            class: "",
        }
    }

    /// A bar of a count or a measure.
    pub fn of(label: impl Into<String>, value: f64, text: impl Into<String>) -> Bar {
        Bar {
            label: label.into(),
            value: value.max(0.0),
            text: text.into(),
            class: "",
        }
    }
}

/// A chart's opening tag, named by its title (its text alternative).
fn open(w: f64, h: f64, title: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    )
}

/// Vertical bars, oldest left: `title` is the chart's text alternative, `max` the word before
/// the tallest bar's value.
pub fn columns(title: &str, max_word: &str, bars: &[Bar]) -> String {
    let (w, h, top, bottom) = (600.0, 180.0, 14.0, 22.0);
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    // At least ten slots: a company's first nights are narrow bars at the left, not one bar
    // across the chart.
    let n = bars.len().max(10) as f64;
    let slot = w / n;
    let bar_w = (slot * 0.7).max(1.0);
    let mut s = open(w, h, title);
    let _ = write!(
        s,
        r#"<line class="axis" x1="0" y1="{y}" x2="{w}" y2="{y}"/>"#,
        y = h - bottom
    );
    if bars.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">—</text>"#,
            w / 2.0,
            h / 2.0
        );
    }
    let every = (bars.len() / 8).max(1);
    for (i, b) in bars.iter().enumerate() {
        let plot = h - top - bottom;
        let bh = if max > 0.0 { b.value / max * plot } else { 0.0 };
        let x = i as f64 * slot + (slot - bar_w) / 2.0;
        let y = h - bottom - bh;
        let _ = write!(
            s,
            r#"<rect class="bar {}" x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{bh:.1}"><title>{}: {}</title></rect>"#,
            b.class,
            esc(&b.label),
            esc(&b.text)
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + bar_w / 2.0,
                h - 6.0,
                esc(&b.label)
            );
        }
    }
    if let Some(top_bar) = bars
        .iter()
        .max_by(|a, b| a.value.total_cmp(&b.value))
        .filter(|b| b.value > 0.0)
    {
        let _ = write!(
            s,
            r#"<text x="2" y="10">{}</text>"#,
            esc(&format!("{max_word} {}", top_bar.text))
        );
    }
    s.push_str("</svg>");
    s
}

/// Two bars per slot on one scale (billed beside collected, each day), oldest left, with a
/// legend: `names` are the two series' names, `slots` each slot's label and its two bars.
pub fn pairs(
    title: &str,
    max_word: &str,
    names: (&str, &str),
    slots: &[(String, Bar, Bar)],
) -> String {
    let (w, h, top, bottom) = (600.0, 200.0, 30.0, 22.0);
    let max = slots
        .iter()
        .flat_map(|(_, a, b)| [a.value, b.value])
        .fold(0.0_f64, f64::max);
    let n = slots.len().max(10) as f64;
    let slot = w / n;
    let bar_w = (slot * 0.38).max(1.0);
    let mut s = open(w, h, title);
    let _ = write!(
        s,
        r#"<rect class="bar" x="200" y="4" width="10" height="10"/><text x="214" y="13">{}</text><rect class="bar alt" x="330" y="4" width="10" height="10"/><text x="344" y="13">{}</text>"#,
        esc(names.0),
        esc(names.1)
    );
    let _ = write!(
        s,
        r#"<line class="axis" x1="0" y1="{y}" x2="{w}" y2="{y}"/>"#,
        y = h - bottom
    );
    let plot = h - top - bottom;
    let every = (slots.len() / 8).max(1);
    for (i, (label, a, b)) in slots.iter().enumerate() {
        let x0 = i as f64 * slot + (slot - 2.0 * bar_w) / 2.0;
        for (k, (bar, class, name)) in [(a, "", names.0), (b, "alt", names.1)]
            .into_iter()
            .enumerate()
        {
            let bh = if max > 0.0 {
                bar.value / max * plot
            } else {
                0.0
            };
            let _ = write!(
                s,
                r#"<rect class="bar {class}" x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{bh:.1}"><title>{} {}: {}</title></rect>"#,
                x0 + k as f64 * bar_w,
                h - bottom - bh,
                esc(label),
                esc(name),
                esc(&bar.text)
            );
        }
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x0 + bar_w,
                h - 6.0,
                esc(label)
            );
        }
    }
    if let Some(top_bar) = slots
        .iter()
        .flat_map(|(_, a, b)| [a, b])
        .max_by(|a, b| a.value.total_cmp(&b.value))
        .filter(|b| b.value > 0.0)
    {
        let _ = write!(
            s,
            r#"<text x="2" y="13">{}</text>"#,
            esc(&format!("{max_word} {}", top_bar.text))
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one per row, with the value written beside each.
pub fn rows(title: &str, bars: &[Bar]) -> String {
    let (w, row, label_w) = (600.0, 26.0, 110.0);
    let h = row * bars.len().max(1) as f64 + 4.0;
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let plot = w - label_w - 120.0;
    let mut s = open(w, h, title);
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let bw = if max > 0.0 { b.value / max * plot } else { 0.0 };
        let _ = write!(
            s,
            r#"<text x="0" y="{:.1}">{}</text><rect class="bar {}" x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}">{}</text>"#,
            y + row * 0.6,
            esc(&b.label),
            b.class,
            row * 0.7,
            esc(&b.label),
            esc(&b.text),
            label_w + bw + 6.0,
            y + row * 0.6,
            esc(&b.text)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_values_exact() {
        let svg = columns(
            "a <b> chart",
            "max",
            &[
                Bar::money("<x>", Decimal::new(12345, 2)),
                Bar::money("y", Decimal::ZERO),
            ],
        );
        assert!(svg.contains("a &lt;b&gt; chart"), "{svg}");
        assert!(svg.contains("&lt;x&gt;: 123.45"), "{svg}");
        assert!(!svg.contains("<x>"), "{svg}");
        let svg = rows("r", &[Bar::of("90+", 3.0, "3")]);
        assert!(svg.contains(">3</text>"), "{svg}");
    }

    #[test]
    fn pairs_share_one_scale_and_name_both_series() {
        let svg = pairs(
            "billed & collected",
            "max",
            ("billed", "<collected>"),
            &[(
                "12-01".into(),
                Bar::money("", Decimal::new(10000, 2)),
                Bar::money("", Decimal::new(5000, 2)),
            )],
        );
        assert!(svg.contains("billed &amp; collected"), "{svg}");
        assert!(svg.contains("12-01 billed: 100.00"), "{svg}");
        assert!(svg.contains("12-01 &lt;collected&gt;: 50.00"), "{svg}");
        // The collected bar is half the billed one's height.
        assert!(
            svg.contains(r#"height="148.0""#) && svg.contains(r#"height="74.0""#),
            "{svg}"
        );
    }

    #[test]
    fn nothing_to_draw_is_an_empty_chart() {
        let svg = columns("none", "max", &[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("max"));
    }
}
