//! `drift_object`: `url` names an object on an HTTP server, `content` is what it holds. Create
//! and update PUT the content, delete DELETEs it, and read GETs it: an object changed on the
//! server shows as drift, one gone (404) as deleted outside Terraform.

use std::borrow::Cow;
use std::collections::HashMap;

use anyhow::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::{ValueEmpty, ValueString};
use tf_provider::{
    map, serve, AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider, Resource,
};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ObjectState<'a> {
    #[serde(borrow = "'a")]
    pub id: ValueString<'a>,
    pub url: ValueString<'a>,
    pub content: ValueString<'a>,
}

fn text(value: &ValueString<'_>) -> String {
    value
        .as_ref_option()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn put(diags: &mut Diagnostics, url: &str, content: &str) -> Option<()> {
    match ureq::put(url).send_string(content) {
        Ok(_) => Some(()),
        Err(e) => {
            diags.root_error("PUT failed", e.to_string());
            None
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ObjectResource;

#[async_trait]
impl Resource for ObjectResource {
    type State<'a> = ObjectState<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("An object on an HTTP server"),
                attributes: map! {
                  "id" => Attribute {
                    attr_type: AttributeType::String,
                    description: Description::plain("The object's URL"),
                    constraint: AttributeConstraint::Computed,
                    ..Default::default()
                  },
                  "url" => Attribute {
                    attr_type: AttributeType::String,
                    description: Description::plain("Where the object is"),
                    constraint: AttributeConstraint::Required,
                    ..Default::default()
                  },
                  "content" => Attribute {
                    attr_type: AttributeType::String,
                    description: Description::plain("What it holds"),
                    constraint: AttributeConstraint::Required,
                    ..Default::default()
                  },
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, _diags: &mut Diagnostics, _config: Self::State<'a>) -> Option<()> {
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let url = text(&state.url);
        match ureq::get(&url).call() {
            Ok(response) => {
                let body = response.into_string().unwrap_or_default();
                let mut state = state;
                state.content = ValueString::from(Cow::Owned(body));
                Some((state, private_state))
            }
            Err(ureq::Error::Status(404, _)) => None,
            Err(e) => {
                diags.root_error("GET failed", e.to_string());
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut state = proposed_state;
        state.id = state.url.clone();
        Some((state, Default::default()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut replace = Vec::new();
        if proposed_state.url != prior_state.url {
            replace.push(AttributePath::new("url"));
        }
        let mut state = proposed_state;
        state.id = state.url.clone();
        Some((state, prior_private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        put(
            diags,
            &text(&planned_state.url),
            &text(&planned_state.content),
        )?;
        Some((planned_state, private_state))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        put(
            diags,
            &text(&planned_state.url),
            &text(&planned_state.content),
        )?;
        Some((planned_state, private_state))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        match ureq::delete(&text(&state.url)).call() {
            Ok(_) | Err(ureq::Error::Status(404, _)) => Some(()),
            Err(e) => {
                diags.root_error("DELETE failed", e.to_string());
                None
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct DriftProvider;

#[async_trait]
impl Provider for DriftProvider {
    type Config<'a> = ValueEmpty;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                description: Description::plain("drift: objects on an HTTP server"),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(
        &self,
        _diags: &mut Diagnostics,
        _config: Self::Config<'a>,
    ) -> Option<()> {
        Some(())
    }

    async fn configure<'a>(
        &self,
        _diags: &mut Diagnostics,
        _terraform_version: String,
        _config: Self::Config<'a>,
    ) -> Option<()> {
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! { "object" => ObjectResource })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(map! {})
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    serve("drift", DriftProvider).await
}
