//! The App's webhook deliveries as GitHub recorded them, and asking for a redelivery: how
//! Gantry catches up on webhooks it missed while it was down.

use http::Method;
use tracing::instrument;

use super::{GitHub, Result};
use crate::core::catch_up::HookDelivery;

/// GitHub lists at most this many deliveries a page.
const PER_PAGE: usize = 100;

/// One page of the App's deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPage {
    pub deliveries: Vec<HookDelivery>,
    /// The cursor of the next (older) page; None on the last.
    pub next: Option<String>,
}

impl GitHub {
    /// `GET /app/hook/deliveries?per_page=100[&cursor=…]` (newest first), with the App JWT:
    /// the page after `cursor` (None: the newest).
    #[instrument(skip(self))]
    pub async fn deliveries_page(&self, cursor: Option<&str>) -> Result<DeliveryPage> {
        let client = self.app_client()?;
        let mut route = format!("/app/hook/deliveries?per_page={PER_PAGE}");
        if let Some(cursor) = cursor {
            let query = serde_urlencoded::to_string([("cursor", cursor)])
                .map_err(|e| super::GitHubError::UnexpectedResponse(e.to_string()))?;
            route.push('&');
            route.push_str(&query);
        }
        let (deliveries, headers): (Vec<HookDelivery>, _) = self
            .call_with_headers(None, &client, Method::GET, &route, None)
            .await?;
        let next = headers
            .get_all(http::header::LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(next_cursor);
        Ok(DeliveryPage { deliveries, next })
    }

    /// `POST /app/hook/deliveries/{id}/attempts`.
    #[instrument(skip(self))]
    pub async fn redeliver(&self, delivery_id: i64) -> Result<()> {
        let client = self.app_client()?;
        let route = format!("/app/hook/deliveries/{delivery_id}/attempts");
        let _: serde::de::IgnoredAny = self.call(None, &client, Method::POST, &route, None).await?;
        Ok(())
    }
}

/// The `cursor` of the `rel="next"` link in a `Link` header, as GitHub's cursor pagination
/// gives it: `<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_1>; rel="next"`.
/// Only the cursor is taken: the next request goes to the configured API URL, not to
/// whatever host the header names.
fn next_cursor(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        if !is_next {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = url::Url::parse(target).ok()?;
        url.query_pairs()
            .find(|(key, _)| key == "cursor")
            .map(|(_, value)| value.into_owned())
            .filter(|cursor| !cursor.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_pages_cursor_is_read_from_the_link_header() {
        let link = "<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_12345>; \
                    rel=\"next\", <https://api.github.com/app/hook/deliveries?per_page=100>; \
                    rel=\"first\"";
        assert_eq!(next_cursor(link), Some("v1_12345".to_string()));
    }

    #[test]
    fn without_a_next_link_there_is_no_next_page() {
        let first = "<https://api.github.com/app/hook/deliveries?per_page=100>; rel=\"first\"";
        assert_eq!(next_cursor(first), None);
        assert_eq!(next_cursor("garbage"), None);
        let no_cursor = "<https://api.github.com/app/hook/deliveries?page=2>; rel=\"next\"";
        assert_eq!(next_cursor(no_cursor), None);
    }
}
