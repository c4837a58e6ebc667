BEGIN TRANSACTION;
CREATE TABLE alert (
	id VARCHAR(40) NOT NULL, 
	rule_id VARCHAR(200) NOT NULL, 
	item_id INTEGER NOT NULL, 
	created_at DATETIME, 
	rule_name VARCHAR NOT NULL, 
	severity VARCHAR NOT NULL, 
	terms JSON, 
	snippet VARCHAR NOT NULL, 
	also_reported_by JSON, 
	story_url VARCHAR(2000), 
	story_hash VARCHAR(64), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alert_rule_item UNIQUE (rule_id, item_id), 
	CONSTRAINT uq_alert_rule_url UNIQUE (rule_id, story_url), 
	CONSTRAINT uq_alert_rule_hash UNIQUE (rule_id, story_hash), 
	FOREIGN KEY(item_id) REFERENCES item (id)
);
INSERT INTO "alert" VALUES('alrt_01a2324eba16853bd8e8e5b7d707','dprk-missile',1,'2026-12-01 15:52:29.938410','North Korea missile activity','high','["north korea", "missile"]','«North Korea» fires ballistic «missile» into the sea','[]','https://news.example.org/dprk-1','89f567e0f99422f7f1572f036d877edc73b8ced32c598115c2eee28535f0f304');
INSERT INTO "alert" VALUES('alrt_01a2324eba18e27abc10cb92aba6','dprk-missile',2,'2026-12-01 15:52:29.938410','North Korea missile activity','high','["north korea", "missile"]','Japan protests «North Korea» «missile» overflight','[]','https://news.example.org/dprk-2','3222406343ca2a671a3e8f797e0eb40623eab1b1693ae26c7d1d7cdb20eac672');
INSERT INTO "alert" VALUES('alrt_01a2324eba230cf28f2bd2a55b08','dprk-missile',3,'2026-12-01 15:52:29.938410','North Korea missile activity','high','["north korea", "missile"]','US and South Korea hold drills after «North Korea» «missile» launch','[]','https://news.example.org/dprk-3','daeccc7b38a3ab99cb232c97d5df18609784e6ea9aaad6bc7c3db6304442e52f');
INSERT INTO "alert" VALUES('alrt_01a2324eba244867afc584662e17','grain',4,'2026-12-01 15:52:29.938410','grain','low','["grain", "odesa"]','«Grain» ships leave «Odesa» under corridor deal','[]','https://news.example.org/other-1','24ed2eb094050437bc06648d0ba2d6907fd0b45d05af8fa5d0a3934e776f5c45');
CREATE TABLE delivery (
	id INTEGER NOT NULL, 
	alert_id VARCHAR(40) NOT NULL, 
	channel VARCHAR(200) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	last_error VARCHAR, 
	sent_at DATETIME, 
	digest_id VARCHAR(40), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_delivery_alert_ch UNIQUE (alert_id, channel), 
	FOREIGN KEY(alert_id) REFERENCES alert (id)
);
INSERT INTO "delivery" VALUES(1,'alrt_01a2324eba16853bd8e8e5b7d707','ops','sent',1,NULL,NULL,'2026-12-01 15:52:30.143130',NULL);
INSERT INTO "delivery" VALUES(2,'alrt_01a2324eba16853bd8e8e5b7d707','audit','pending',1,'2026-12-01 15:52:57.247849','webhook audit (http://127.0.0.1:45847): HTTP 503',NULL,NULL);
INSERT INTO "delivery" VALUES(3,'alrt_01a2324eba18e27abc10cb92aba6','ops','sent',1,NULL,NULL,'2026-12-01 15:52:30.146068',NULL);
INSERT INTO "delivery" VALUES(4,'alrt_01a2324eba18e27abc10cb92aba6','audit','pending',1,'2026-12-01 15:52:55.512477','webhook audit (http://127.0.0.1:45847): HTTP 503',NULL,NULL);
INSERT INTO "delivery" VALUES(5,'alrt_01a2324eba230cf28f2bd2a55b08','ops','sent',1,NULL,NULL,'2026-12-01 15:52:30.152307',NULL);
INSERT INTO "delivery" VALUES(6,'alrt_01a2324eba230cf28f2bd2a55b08','audit','pending',1,'2026-12-01 15:52:56.289938','webhook audit (http://127.0.0.1:45847): HTTP 503',NULL,NULL);
INSERT INTO "delivery" VALUES(7,'alrt_01a2324eba244867afc584662e17','ops','sent',1,NULL,NULL,'2026-12-01 15:52:30.154413',NULL);
INSERT INTO "delivery" VALUES(8,'alrt_01a2324eba244867afc584662e17','audit','pending',1,'2026-12-01 15:52:58.117952','webhook audit (http://127.0.0.1:45847): HTTP 503',NULL,NULL);
CREATE TABLE feed (
	id VARCHAR(200) NOT NULL, 
	url VARCHAR NOT NULL, 
	etag VARCHAR, 
	last_modified VARCHAR, 
	initialized BOOLEAN NOT NULL, 
	last_fetch_at DATETIME, 
	last_success_at DATETIME, 
	last_status INTEGER, 
	last_error VARCHAR, 
	consecutive_errors INTEGER NOT NULL, 
	last_item_count INTEGER NOT NULL, 
	total_items INTEGER NOT NULL, 
	next_due_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO "feed" VALUES('upgrade','/work/main/tests/data/upgrade/feed-0.1.0.xml','"23c5a4ac5f946cb678a0dd75a4db64e9"',NULL,1,'2026-12-01 15:52:29.938410','2026-12-01 15:52:29.938410',200,NULL,0,4,4,'2026-12-01 16:02:48.578692');
CREATE TABLE item (
	id INTEGER NOT NULL, 
	feed_id VARCHAR(200) NOT NULL, 
	guid VARCHAR(2000) NOT NULL, 
	url VARCHAR, 
	title VARCHAR NOT NULL, 
	summary VARCHAR NOT NULL, 
	content VARCHAR NOT NULL, 
	author VARCHAR, 
	categories JSON, 
	source VARCHAR, 
	language VARCHAR, 
	published_at DATETIME, 
	first_seen_at DATETIME, 
	updated_at DATETIME, 
	content_hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_item_feed_guid UNIQUE (feed_id, guid)
);
INSERT INTO "item" VALUES(1,'upgrade','dprk-1','https://news.example.org/dprk-1','North Korea fires ballistic missile into the sea','Seoul said North Korea launched a short-range ballistic missile from its east coast on Tuesday.','',NULL,'[]',NULL,NULL,'2022-10-04 07:23:00.000000','2026-12-01 15:52:29.938410',NULL,'89f567e0f99422f7f1572f036d877edc73b8ced32c598115c2eee28535f0f304');
INSERT INTO "item" VALUES(2,'upgrade','dprk-2','https://news.example.org/dprk-2','Japan protests North Korea missile overflight','Tokyo lodged a protest after a North Korea missile passed over Hokkaido.','',NULL,'[]',NULL,NULL,'2022-10-04 09:10:00.000000','2026-12-01 15:52:29.938410',NULL,'3222406343ca2a671a3e8f797e0eb40623eab1b1693ae26c7d1d7cdb20eac672');
INSERT INTO "item" VALUES(3,'upgrade','dprk-3','https://news.example.org/dprk-3','US and South Korea hold drills after North Korea missile launch','The allies staged air drills in response to the missile launch by North Korea.','',NULL,'[]',NULL,NULL,'2022-10-05 02:00:00.000000','2026-12-01 15:52:29.938410',NULL,'daeccc7b38a3ab99cb232c97d5df18609784e6ea9aaad6bc7c3db6304442e52f');
INSERT INTO "item" VALUES(4,'upgrade','other-1','https://news.example.org/other-1','Grain ships leave Odesa under corridor deal','Three ships carrying grain left the port on Wednesday.','',NULL,'[]',NULL,NULL,'2022-10-05 05:00:00.000000','2026-12-01 15:52:29.938410',NULL,'24ed2eb094050437bc06648d0ba2d6907fd0b45d05af8fa5d0a3934e776f5c45');
CREATE TABLE rulestate (
	rule_id VARCHAR(200) NOT NULL, 
	fingerprint VARCHAR(64) NOT NULL, 
	active_since DATETIME, 
	backfilled BOOLEAN NOT NULL, 
	PRIMARY KEY (rule_id)
);
INSERT INTO "rulestate" VALUES('dprk-missile','6a80a213a52b069dcc491cccb1fe8d5287b4ab94637eb64a758c8c3c49f2d52d','2026-12-01 15:52:29.914067',0);
INSERT INTO "rulestate" VALUES('grain','e09c6c4ac33636734cef2be19dbfd1604016d22d22724076d6aef3e3e79b54a3','2026-12-01 15:52:29.914067',0);
CREATE TABLE schema_version (
	version INTEGER NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO "schema_version" VALUES(1);
CREATE INDEX ix_feed_next_due_at ON feed (next_due_at);
CREATE INDEX ix_item_published_at ON item (published_at);
CREATE INDEX ix_item_first_seen_at ON item (first_seen_at);
CREATE INDEX ix_item_content_hash ON item (content_hash);
CREATE INDEX ix_item_feed_id ON item (feed_id);
CREATE INDEX ix_alert_created_at ON alert (created_at);
CREATE INDEX ix_alert_rule_id ON alert (rule_id);
CREATE INDEX ix_alert_item_id ON alert (item_id);
CREATE INDEX ix_delivery_alert_id ON delivery (alert_id);
CREATE INDEX ix_delivery_status ON delivery (status);
CREATE INDEX ix_delivery_digest_id ON delivery (digest_id);
CREATE INDEX ix_delivery_next_attempt_at ON delivery (next_attempt_at);
COMMIT;
