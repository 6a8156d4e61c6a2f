//! stub: being written
use async_trait::async_trait;

use super::registry::ProviderContext;
use super::*;
use crate::model::Attrs;

pub fn schema(_type_name: &str) -> Option<TypeSchema> {
    todo!()
}
pub fn type_names() -> Vec<String> {
    todo!()
}
pub fn validate_config(_settings: &Attrs) -> Vec<(String, String)> {
    todo!()
}
pub fn validate(_address: &Address, _attrs: &Attrs) -> Vec<(String, String)> {
    todo!()
}

pub struct LocalProvider;

impl LocalProvider {
    pub fn new(_settings: &Attrs, _ctx: &ProviderContext) -> Result<Self, String> {
        todo!()
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }
    fn schema(&self, type_name: &str) -> Option<TypeSchema> {
        schema(type_name)
    }
    async fn read(
        &self,
        _address: &Address,
        _id: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        todo!()
    }
    async fn find(
        &self,
        _address: &Address,
        _identity: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        todo!()
    }
    async fn create(&self, _request: &CreateRequest) -> Result<LiveObject, ProviderError> {
        todo!()
    }
    async fn update(&self, _request: &UpdateRequest) -> Result<LiveObject, ProviderError> {
        todo!()
    }
    async fn delete(&self, _request: &DeleteRequest) -> Result<(), ProviderError> {
        todo!()
    }
}
