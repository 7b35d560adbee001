//! An Extism plugin built with extism-pdk, unchanged from how Extism's own examples are
//! written: `count_vowels` is extism/plugins' count_vowels (config `vowels`, variable
//! `total`), the rest exercise the data ABI for nestbox's tests.

use extism_pdk::*;
use serde::Serialize;

const VOWELS: &str = "aeiouAEIOU";

#[derive(Serialize)]
struct VowelReport {
    pub count: u32,
    pub total: u32,
    pub vowels: String,
}

fn get_total() -> u32 {
    match var::get::<String>("total") {
        Ok(Some(v)) => v.parse::<u32>().unwrap_or(0),
        _ => 0,
    }
}

fn get_vowels() -> String {
    match config::get("vowels") {
        Ok(Some(v)) => v,
        _ => VOWELS.to_string(),
    }
}

/// extism/plugins' count_vowels.
#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<Json<VowelReport>> {
    let vowels = get_vowels();
    let count = input.chars().filter(|ch| vowels.contains(*ch)).count() as u32;
    let total = get_total() + count;
    var::set("total", total.to_string())?;
    Ok(Json(VowelReport {
        count,
        total,
        vowels,
    }))
}

/// The input, unchanged (any bytes).
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

/// Fails with the input as the error message (status -1 and `error_set`).
#[plugin_fn]
pub fn fail(input: String) -> FnResult<()> {
    Err(WithReturnCode::new(Error::msg(input), 7))
}

/// Logs its input at info level and returns config `greeting` + input.
#[plugin_fn]
pub fn greet(input: String) -> FnResult<String> {
    info!("greeting {}", input);
    let greeting = config::get("greeting")?.unwrap_or_else(|| "hello".to_string());
    Ok(format!("{greeting}, {input}"))
}

/// An HTTP GET of the input URL; returns the status and body.
#[plugin_fn]
pub fn http_get(url: String) -> FnResult<String> {
    let response = http::request::<()>(&HttpRequest::new(url), None)?;
    let body = String::from_utf8_lossy(&response.body()).into_owned();
    Ok(format!("{} {}", response.status_code(), body))
}
