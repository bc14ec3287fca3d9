//! Files the code wrote to `/outputs`, checked on the host before they reach
//! the client: the runner shares its user with the code it runs, so its
//! report is not trusted. The count and byte caps are applied again, the
//! media type comes from the file name, and image bytes must start with
//! their format's signature (or, for SVG, look like SVG text).

use super::protocol::RunArtifact;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A file from `/outputs`, as returned with a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Path inside the sandbox.
    pub path: String,
    pub size: u64,
    /// Media type from the file name.
    pub mime: &'static str,
    /// The content (images within the byte cap whose bytes match their type).
    pub content: Option<ArtifactContent>,
    /// What a PNG says it shows, from its `Description` text chunk (the
    /// Python images' matplotlib backend writes one for each figure).
    pub description: Option<String>,
}

/// The content of a returned artifact.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactContent {
    /// PNG, JPEG, GIF or WebP, base64: MCP image content.
    Image(String),
    /// SVG text: an embedded resource (many clients cannot take SVG as an image).
    Svg(String),
}

/// The media type of a file name; images are recognized, the rest is bytes.
pub fn mime_for(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("csv") => "text/csv",
        Some("txt" | "log" | "md") => "text/plain",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// True when `bytes` start the way a file of `mime` must.
fn has_signature(mime: &str, bytes: &[u8]) -> bool {
    match mime {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        "image/gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        _ => false,
    }
}

/// The PNG text chunk keyword of a chart's description.
const DESCRIPTION_KEYWORD: &str = "Description";
/// Longest description passed on, in characters (the backend writes at
/// most 2000; code can write anything).
const MAX_DESCRIPTION_CHARS: usize = 4000;

/// The `Description` text a PNG carries before its image data, if any
/// (latin-1, compressed or UTF-8 text chunk), bounded.
fn png_description(bytes: &[u8]) -> Option<String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_ignore_text_chunk(false);
    let reader = decoder.read_info().ok()?;
    let info = reader.info();
    let keyword = |key: &str| key == DESCRIPTION_KEYWORD;
    let text = info
        .uncompressed_latin1_text
        .iter()
        .find(|chunk| keyword(&chunk.keyword))
        .map(|chunk| chunk.text.clone())
        .or_else(|| {
            info.utf8_text
                .iter()
                .find(|chunk| keyword(&chunk.keyword))
                .and_then(|chunk| chunk.get_text().ok())
        })
        .or_else(|| {
            info.compressed_latin1_text
                .iter()
                .find(|chunk| keyword(&chunk.keyword))
                .and_then(|chunk| chunk.get_text().ok())
        })?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    })
}

/// Applies the caps and checks to what the runner reported.
pub fn check(reported: Vec<RunArtifact>, max_files: usize, max_bytes: u64) -> Vec<Artifact> {
    let mut used = 0u64;
    reported
        .into_iter()
        .filter(|artifact| artifact.path.starts_with("/outputs/"))
        .take(max_files)
        .map(|artifact| {
            let mime = mime_for(&artifact.path);
            let decoded = artifact
                .data_base64
                .as_deref()
                .and_then(|data| STANDARD.decode(data).ok());
            let description = decoded
                .as_deref()
                .filter(|bytes| mime == "image/png" && has_signature(mime, bytes))
                .and_then(png_description);
            let bytes = decoded.filter(|bytes| used + bytes.len() as u64 <= max_bytes);
            let content = bytes.and_then(|bytes| {
                let content = if mime == "image/svg+xml" {
                    String::from_utf8(bytes.clone())
                        .ok()
                        .filter(|text| text.contains("<svg"))
                        .map(ArtifactContent::Svg)
                } else if has_signature(mime, &bytes) {
                    Some(ArtifactContent::Image(STANDARD.encode(&bytes)))
                } else {
                    None
                };
                if content.is_some() {
                    used += bytes.len() as u64;
                }
                content
            });
            Artifact {
                path: artifact.path,
                size: artifact.size,
                mime,
                content,
                description,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(path: &str, bytes: &[u8]) -> RunArtifact {
        RunArtifact {
            path: path.to_string(),
            size: bytes.len() as u64,
            mime: "image/png".to_string(),
            data_base64: Some(STANDARD.encode(bytes)),
        }
    }

    /// A 1x1 PNG with the given text chunks: `(kind, keyword, text)` where
    /// kind is "tEXt", "zTXt" or "iTXt".
    fn png_with_text(chunks: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
        encoder.set_color(png::ColorType::Grayscale);
        for (kind, keyword, text) in chunks {
            let (keyword, text) = (keyword.to_string(), text.to_string());
            match *kind {
                "tEXt" => encoder.add_text_chunk(keyword, text),
                "zTXt" => encoder.add_ztxt_chunk(keyword, text),
                _ => encoder.add_itxt_chunk(keyword, text),
            }
            .expect("text chunk");
        }
        let mut writer = encoder.write_header().expect("header");
        writer.write_image_data(&[0]).expect("pixel");
        drop(writer);
        bytes
    }

    #[test]
    fn a_png_description_is_read_from_any_text_chunk_and_bounded() {
        let text = "figure 6.4x4.8 in, 1 axes\naxes 1 \"squares\": x (linear, 0 to 3)";
        for kind in ["tEXt", "zTXt", "iTXt"] {
            let png = png_with_text(&[(kind, "Software", "x"), (kind, "Description", text)]);
            assert_eq!(png_description(&png).as_deref(), Some(text), "{kind}");
        }
        let unicode = png_with_text(&[("iTXt", "Description", "axes 1 \"Temperatur °C — Zürich\"")]);
        assert_eq!(
            png_description(&unicode).as_deref(),
            Some("axes 1 \"Temperatur °C — Zürich\"")
        );
        let long = "é".repeat(MAX_DESCRIPTION_CHARS + 10);
        let bounded = png_description(&png_with_text(&[("iTXt", "Description", &long)])).expect("a description");
        assert_eq!(bounded.chars().count(), MAX_DESCRIPTION_CHARS + 3);
        assert!(png_description(&png_with_text(&[("tEXt", "Title", "no description")])).is_none());
        assert!(png_description(PNG).is_none(), "not a readable PNG");
        // Through `check`: the description comes with the artifact, also
        // when the image itself is over the byte cap.
        let checked = check(
            vec![reported(
                "/outputs/figure-1.png",
                &png_with_text(&[("tEXt", "Description", text)]),
            )],
            10,
            1,
        );
        assert_eq!(checked[0].content, None);
        assert_eq!(checked[0].description.as_deref(), Some(text));
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\nrest-of-the-image";

    #[test]
    fn images_with_their_signature_are_returned() {
        let checked = check(
            vec![
                reported("/outputs/a.png", PNG),
                reported("/outputs/b.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            ],
            10,
            1 << 20,
        );
        assert_eq!(checked[0].mime, "image/png");
        assert_eq!(checked[0].content, Some(ArtifactContent::Image(STANDARD.encode(PNG))));
        assert!(matches!(checked[1].content, Some(ArtifactContent::Svg(_))));
    }

    #[test]
    fn forged_types_and_paths_are_not_trusted() {
        let checked = check(
            vec![
                reported("/outputs/fake.png", b"not a png at all"),
                reported("/outputs/data.csv", PNG),
                reported("/etc/passwd.png", PNG),
            ],
            10,
            1 << 20,
        );
        assert_eq!(checked.len(), 2, "paths outside /outputs are dropped");
        assert_eq!(checked[0].content, None);
        assert_eq!(checked[1].mime, "text/csv");
        assert_eq!(checked[1].content, None);
    }

    #[test]
    fn caps_on_count_and_bytes_hold() {
        let many: Vec<RunArtifact> = (0..5).map(|i| reported(&format!("/outputs/{i}.png"), PNG)).collect();
        let checked = check(many, 3, PNG.len() as u64 * 2);
        assert_eq!(checked.len(), 3);
        assert_eq!(checked.iter().filter(|a| a.content.is_some()).count(), 2);
    }
}
