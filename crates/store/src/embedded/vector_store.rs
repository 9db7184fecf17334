//! The `VectorStore` trait on the embedded store: collections, points, searches, payload
//! indexes, snapshots (through `snapshots.rs`), flush and optimize.

use super::*;

impl VectorStore for EmbeddedStore {
    fn create_collection(&self, name: &str, config: &CollectionConfig) -> Result<()> {
        self.check_synced()?;
        check_collection_name(name)?;
        config.validate()?;
        let mut collections = write(&self.collections);
        if collections.contains_key(name) {
            return Err(StoreError::CollectionExists(name.to_owned()));
        }
        let dir = self.root.join(COLLECTIONS_DIR).join(name);
        // Built aside and renamed into place: a crash leaves no half-made collection.
        let staging = self
            .root
            .join(COLLECTIONS_DIR)
            .join(format!(".{name}.creating"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
        }
        fs::create_dir_all(&staging).map_err(|e| StoreError::io(&staging, e))?;
        let shard = EdgeShard::new(&staging.join(SHARD_DIR), edge_config(config, &self.options))
            .map_err(|e| backend(name, "create", e))?;
        shard.flush().map_err(|e| backend(name, "create", e))?;
        drop(shard);
        write_json_atomically(
            &staging.join(COLLECTION_FILE),
            &CollectionFile {
                layout_version: LAYOUT_VERSION,
                config: config.clone(),
            },
        )?;
        fs::rename(&staging, &dir).map_err(|e| StoreError::io(&dir, e))?;
        sync_dir(&self.root.join(COLLECTIONS_DIR))?;
        let collection = load_collection(name, &dir, &self.options)?;
        collections.insert(name.to_owned(), Arc::new(collection));
        Ok(())
    }

    fn delete_collection(&self, name: &str) -> Result<bool> {
        self.check_synced()?;
        let mut collections = write(&self.collections);
        let Some(collection) = collections.remove(name) else {
            return Ok(false);
        };
        collection.retire();
        drop(collection);
        let dir = self.root.join(COLLECTIONS_DIR).join(name);
        let doomed = self
            .root
            .join(COLLECTIONS_DIR)
            .join(format!(".{name}.deleting"));
        fs::rename(&dir, &doomed).map_err(|e| StoreError::io(&dir, e))?;
        sync_dir(&self.root.join(COLLECTIONS_DIR))?;
        fs::remove_dir_all(&doomed).map_err(|e| StoreError::io(&doomed, e))?;
        Ok(true)
    }

    fn list_collections(&self) -> Result<Vec<String>> {
        Ok(read(&self.collections).keys().cloned().collect())
    }

    fn collection_config(&self, name: &str) -> Result<CollectionConfig> {
        Ok(self.collection(name)?.config.clone())
    }

    fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        let collection = self.collection(name)?;
        let info = collection
            .shard
            .info()
            .map_err(|e| backend(name, "info", e))?;
        Ok(CollectionInfo {
            name: name.to_owned(),
            config: collection.config.clone(),
            points: info.points_count,
            indexed_vectors: info.indexed_vectors_count,
            segments: info.segments_count,
            payload_indexes: info
                .payload_schema
                .iter()
                .map(|(key, index)| {
                    (
                        key.to_string(),
                        format!("{:?}", index.data_type).to_lowercase(),
                    )
                })
                .collect(),
        })
    }

    fn upsert(&self, collection_name: &str, points: Vec<Point>) -> Result<UpsertSummary> {
        self.check_synced()?;
        let collection = self.collection(collection_name)?;
        let (points, duplicates_replaced) = prepare_batch(&collection.config, points)?;
        let written = points.len();
        if written == 0 {
            return Ok(UpsertSummary {
                written,
                duplicates_replaced,
            });
        }
        let points = points
            .into_iter()
            .map(|point| {
                let vectors: HashMap<String, VectorPersisted> = point
                    .vectors
                    .into_iter()
                    .map(|(name, vector)| {
                        let vector = match vector {
                            Vector::Dense(values) => VectorPersisted::Dense(values),
                            Vector::Sparse(sparse) => VectorPersisted::Sparse(edge_sparse(&sparse)),
                        };
                        (name, vector)
                    })
                    .collect();
                let payload = match point.payload {
                    Value::Object(map) => Some(qdrant_edge::Payload(map)),
                    _ => None,
                };
                qdrant_edge::PointStructPersisted {
                    id: edge_id(point.id),
                    vector: VectorStructPersisted::Named(vectors),
                    payload,
                }
            })
            .collect();
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .update(operation)
            .map_err(|e| backend(collection_name, "upsert", e))?;
        collection
            .written
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.sync_written(collection_name)?;
        Ok(UpsertSummary {
            written,
            duplicates_replaced,
        })
    }

    fn delete(&self, collection_name: &str, selector: PointSelector) -> Result<()> {
        self.check_synced()?;
        let collection = self.collection(collection_name)?;
        let operation = match selector {
            PointSelector::Ids(ids) if ids.is_empty() => return Ok(()),
            PointSelector::Ids(ids) => PointOperations::DeletePoints {
                ids: ids.into_iter().map(edge_id).collect(),
            },
            PointSelector::Filter(filter) => {
                PointOperations::DeletePointsByFilter(edge_filter(&filter)?)
            }
        };
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .update(UpdateOperation::PointOperation(operation))
            .map_err(|e| backend(collection_name, "delete", e))?;
        collection
            .written
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.sync_written(collection_name)
    }

    fn get(
        &self,
        collection_name: &str,
        ids: &[PointId],
        with_payload: PayloadSelection,
        with_vectors: VectorSelection,
    ) -> Result<Vec<Record>> {
        let collection = self.collection(collection_name)?;
        check_vector_selection(&collection.config, &with_vectors)?;
        let request = RetrieveRequest {
            point_ids: ids.iter().copied().map(edge_id).collect(),
            with_payload: Some(edge_with_payload(&with_payload)?),
            with_vector: Some(edge_with_vector(&with_vectors)),
        };
        let records = collection
            .shard
            .retrieve(request)
            .map_err(|e| backend(collection_name, "get", e))?;
        let mut by_id: HashMap<PointId, Record> = records
            .into_iter()
            .map(|r| {
                let id = our_id(r.id);
                (
                    id,
                    Record {
                        id,
                        payload: our_payload(r.payload),
                        vectors: our_vectors(r.vector),
                    },
                )
            })
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    fn count(&self, collection_name: &str, filter: Option<&Filter>) -> Result<usize> {
        let collection = self.collection(collection_name)?;
        let request = CountRequest {
            filter: edge_filter_opt(filter)?,
            exact: true,
        };
        collection
            .shard
            .count(request)
            .map_err(|e| backend(collection_name, "count", e))
    }

    fn scroll(&self, collection_name: &str, request: ScrollRequest) -> Result<ScrollPage> {
        let collection = self.collection(collection_name)?;
        check_vector_selection(&collection.config, &request.with_vectors)?;
        let edge_request = qdrant_edge::ScrollRequest {
            offset: request.offset.map(edge_id),
            limit: Some(request.limit),
            filter: edge_filter_opt(request.filter.as_ref())?,
            with_payload: Some(edge_with_payload(&request.with_payload)?),
            with_vector: edge_with_vector(&request.with_vectors),
            order_by: None,
        };
        let (records, next) = collection
            .shard
            .scroll(edge_request)
            .map_err(|e| backend(collection_name, "scroll", e))?;
        Ok(ScrollPage {
            points: records
                .into_iter()
                .map(|r| Record {
                    id: our_id(r.id),
                    payload: our_payload(r.payload),
                    vectors: our_vectors(r.vector),
                })
                .collect(),
            next: next.map(our_id),
        })
    }

    fn search_batch(
        &self,
        collection_name: &str,
        requests: Vec<SearchRequest>,
    ) -> Result<Vec<Vec<ScoredPoint>>> {
        let collection = self.collection(collection_name)?;
        let mut queries = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            check_query(&collection.config, index, &request.query)?;
            let mut query = QueryRequest::new(request.limit);
            query.query = Some(edge_query(&request.query));
            query.filter = edge_filter_opt(request.filter.as_ref())?;
            query.offset = request.offset;
            query.score_threshold = request.score_threshold;
            query.params = Some(SearchParams {
                hnsw_ef: request.ef,
                exact: request.exact,
                ..SearchParams::default()
            });
            query.with_payload = edge_with_payload(&request.with_payload)?;
            check_vector_selection(&collection.config, &request.with_vectors)?;
            query.with_vector = edge_with_vector(&request.with_vectors);
            queries.push(query);
        }
        let answers = collection
            .shard
            .query_batch(QueryBatchRequest { queries })
            .map_err(|e| backend(collection_name, "search", e))?;
        Ok(answers
            .into_iter()
            .map(|hits| hits.into_iter().map(scored).collect())
            .collect())
    }

    fn create_payload_index(
        &self,
        collection_name: &str,
        field: &str,
        field_type: FieldType,
    ) -> Result<()> {
        let collection = self.collection(collection_name)?;
        let schema = match field_type {
            FieldType::Keyword => PayloadSchemaType::Keyword,
            FieldType::Integer => PayloadSchemaType::Integer,
            FieldType::Float => PayloadSchemaType::Float,
            FieldType::Bool => PayloadSchemaType::Bool,
            FieldType::Datetime => PayloadSchemaType::Datetime,
            FieldType::Uuid => PayloadSchemaType::Uuid,
            FieldType::Text => PayloadSchemaType::Text,
        };
        let operation = UpdateOperation::FieldIndexOperation(
            qdrant_edge::FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                field_name: json_path(field)?,
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            }),
        );
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .update(operation)
            .map_err(|e| backend(collection_name, "create payload index", e))?;
        self.sync_written(collection_name)
    }

    fn flush(&self) -> Result<()> {
        self.check_synced()?;
        self.sync()
    }

    fn health(&self) -> Result<()> {
        self.check_synced()
    }

    fn create_snapshot(&self, collection: &str) -> Result<SnapshotInfo> {
        self.take_snapshot(collection)
    }

    fn list_snapshots(&self, collection: &str) -> Result<Vec<SnapshotInfo>> {
        let dir = self.snapshots_dir(collection)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut snapshots = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| StoreError::io(&dir, e))?.path();
            let is_snapshot = path.extension().is_some_and(|e| e == SNAPSHOT_EXTENSION)
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if is_snapshot {
                snapshots.push(snapshot::describe(&path)?);
            }
        }
        snapshots.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
        Ok(snapshots)
    }

    fn delete_snapshot(&self, collection: &str, name: &str) -> Result<bool> {
        let path = self.snapshot_path(collection, name)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        let checksum = checksum_path(&path);
        match fs::remove_file(&checksum) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&checksum, e)),
            _ => Ok(true),
        }
    }

    fn snapshot_file(&self, collection: &str, name: &str) -> Result<(PathBuf, SnapshotInfo)> {
        let path = self.snapshot_path(collection, name)?;
        if !path.is_file() {
            return Err(StoreError::UnknownSnapshot {
                collection: collection.to_owned(),
                name: name.to_owned(),
            });
        }
        let info = snapshot::describe(&path)?;
        Ok((path, info))
    }

    fn restore_snapshot(&self, collection: &str, name: &str) -> Result<SnapshotInfo> {
        let path = self.snapshot_path(collection, name)?;
        if !path.is_file() {
            return Err(StoreError::UnknownSnapshot {
                collection: collection.to_owned(),
                name: name.to_owned(),
            });
        }
        self.restore_from(collection, &path)
    }

    fn restore_snapshot_file(&self, collection: &str, archive: &Path) -> Result<SnapshotInfo> {
        self.restore_from(collection, archive)
    }

    fn optimize(&self, collection_name: &str) -> Result<bool> {
        let collection = self.collection(collection_name)?;
        let _changing = collection.changing(collection_name)?;
        collection
            .shard
            .optimize()
            .map_err(|e| backend(collection_name, "optimize", e))
    }
}
