--
-- PostgreSQL database dump
--

\restrict E0TccNMh25XL2lmPQtSKy0eC7SGQ6cGOCvDo3EuQFTBGY0XFlUIyHb2steO9ALB

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alert; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert (
    id character varying(40) NOT NULL,
    rule_id character varying(200) NOT NULL,
    item_id integer NOT NULL,
    created_at timestamp without time zone,
    rule_name character varying NOT NULL,
    severity character varying NOT NULL,
    terms json,
    snippet character varying NOT NULL,
    also_reported_by json,
    story_url character varying(2000),
    story_hash character varying(64)
);


--
-- Name: delivery; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.delivery (
    id integer NOT NULL,
    alert_id character varying(40) NOT NULL,
    channel character varying(200) NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamp without time zone,
    last_error character varying,
    sent_at timestamp without time zone,
    digest_id character varying(40)
);


--
-- Name: delivery_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.delivery_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: delivery_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.delivery_id_seq OWNED BY public.delivery.id;


--
-- Name: feed; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.feed (
    id character varying(200) NOT NULL,
    url character varying NOT NULL,
    etag character varying,
    last_modified character varying,
    initialized boolean NOT NULL,
    last_fetch_at timestamp without time zone,
    last_success_at timestamp without time zone,
    last_status integer,
    last_error character varying,
    consecutive_errors integer NOT NULL,
    last_item_count integer NOT NULL,
    total_items integer NOT NULL,
    next_due_at timestamp without time zone
);


--
-- Name: item; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.item (
    id integer NOT NULL,
    feed_id character varying(200) NOT NULL,
    guid character varying(2000) NOT NULL,
    url character varying,
    title character varying NOT NULL,
    summary character varying NOT NULL,
    content character varying NOT NULL,
    author character varying,
    categories json,
    source character varying,
    language character varying,
    published_at timestamp without time zone,
    first_seen_at timestamp without time zone,
    updated_at timestamp without time zone,
    content_hash character varying(64) NOT NULL
);


--
-- Name: item_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.item_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: item_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.item_id_seq OWNED BY public.item.id;


--
-- Name: rulestate; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rulestate (
    rule_id character varying(200) NOT NULL,
    fingerprint character varying(64) NOT NULL,
    active_since timestamp without time zone,
    backfilled boolean NOT NULL
);


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_version (
    version integer NOT NULL
);


--
-- Name: schema_version_version_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.schema_version_version_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: schema_version_version_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.schema_version_version_seq OWNED BY public.schema_version.version;


--
-- Name: delivery id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.delivery ALTER COLUMN id SET DEFAULT nextval('public.delivery_id_seq'::regclass);


--
-- Name: item id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.item ALTER COLUMN id SET DEFAULT nextval('public.item_id_seq'::regclass);


--
-- Name: schema_version version; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_version ALTER COLUMN version SET DEFAULT nextval('public.schema_version_version_seq'::regclass);


--
-- Data for Name: alert; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.alert VALUES ('alrt_01a2324ecd33e3698886bdd52d06', 'dprk-missile', 1, '2026-12-01 15:52:34.830643', 'North Korea missile activity', 'high', '["north korea", "missile"]', '«North Korea» fires ballistic «missile» into the sea', '[]', 'https://news.example.org/dprk-1', '89f567e0f99422f7f1572f036d877edc73b8ced32c598115c2eee28535f0f304');
INSERT INTO public.alert VALUES ('alrt_01a2324ecd3a09af6d9541e4036b', 'dprk-missile', 2, '2026-12-01 15:52:34.830643', 'North Korea missile activity', 'high', '["north korea", "missile"]', 'Japan protests «North Korea» «missile» overflight', '[]', 'https://news.example.org/dprk-2', '3222406343ca2a671a3e8f797e0eb40623eab1b1693ae26c7d1d7cdb20eac672');
INSERT INTO public.alert VALUES ('alrt_01a2324ecd43aa1e7fff27d2bfb5', 'dprk-missile', 3, '2026-12-01 15:52:34.830643', 'North Korea missile activity', 'high', '["north korea", "missile"]', 'US and South Korea hold drills after «North Korea» «missile» launch', '[]', 'https://news.example.org/dprk-3', 'daeccc7b38a3ab99cb232c97d5df18609784e6ea9aaad6bc7c3db6304442e52f');
INSERT INTO public.alert VALUES ('alrt_01a2324ecd4ae454923886e0c01f', 'grain', 4, '2026-12-01 15:52:34.830643', 'grain', 'low', '["grain", "odesa"]', '«Grain» ships leave «Odesa» under corridor deal', '[]', 'https://news.example.org/other-1', '24ed2eb094050437bc06648d0ba2d6907fd0b45d05af8fa5d0a3934e776f5c45');


--
-- Data for Name: delivery; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.delivery VALUES (1, 'alrt_01a2324ecd33e3698886bdd52d06', 'ops', 'sent', 1, NULL, NULL, '2026-12-01 15:52:35.119429', NULL);
INSERT INTO public.delivery VALUES (3, 'alrt_01a2324ecd3a09af6d9541e4036b', 'ops', 'sent', 1, NULL, NULL, '2026-12-01 15:52:35.122866', NULL);
INSERT INTO public.delivery VALUES (2, 'alrt_01a2324ecd33e3698886bdd52d06', 'audit', 'pending', 1, '2026-12-01 15:53:04.423214', 'webhook audit (http://127.0.0.1:46479): HTTP 503', NULL, NULL);
INSERT INTO public.delivery VALUES (7, 'alrt_01a2324ecd4ae454923886e0c01f', 'ops', 'sent', 1, NULL, NULL, '2026-12-01 15:52:35.128923', NULL);
INSERT INTO public.delivery VALUES (5, 'alrt_01a2324ecd43aa1e7fff27d2bfb5', 'ops', 'sent', 1, NULL, NULL, '2026-12-01 15:52:35.126977', NULL);
INSERT INTO public.delivery VALUES (4, 'alrt_01a2324ecd3a09af6d9541e4036b', 'audit', 'pending', 1, '2026-12-01 15:53:00.697006', 'webhook audit (http://127.0.0.1:46479): HTTP 503', NULL, NULL);
INSERT INTO public.delivery VALUES (8, 'alrt_01a2324ecd4ae454923886e0c01f', 'audit', 'pending', 1, '2026-12-01 15:53:03.998298', 'webhook audit (http://127.0.0.1:46479): HTTP 503', NULL, NULL);
INSERT INTO public.delivery VALUES (6, 'alrt_01a2324ecd43aa1e7fff27d2bfb5', 'audit', 'pending', 1, '2026-12-01 15:52:59.724705', 'webhook audit (http://127.0.0.1:46479): HTTP 503', NULL, NULL);


--
-- Data for Name: feed; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.feed VALUES ('upgrade', '/work/main/tests/data/upgrade/feed-0.1.0.xml', '"23c5a4ac5f946cb678a0dd75a4db64e9"', NULL, true, '2026-12-01 15:52:34.830643', '2026-12-01 15:52:34.830643', 200, NULL, 0, 4, 4, '2026-12-01 16:02:43.763575');


--
-- Data for Name: item; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.item VALUES (1, 'upgrade', 'dprk-1', 'https://news.example.org/dprk-1', 'North Korea fires ballistic missile into the sea', 'Seoul said North Korea launched a short-range ballistic missile from its east coast on Tuesday.', '', NULL, '[]', NULL, NULL, '2022-10-04 07:23:00', '2026-12-01 15:52:34.830643', NULL, '89f567e0f99422f7f1572f036d877edc73b8ced32c598115c2eee28535f0f304');
INSERT INTO public.item VALUES (2, 'upgrade', 'dprk-2', 'https://news.example.org/dprk-2', 'Japan protests North Korea missile overflight', 'Tokyo lodged a protest after a North Korea missile passed over Hokkaido.', '', NULL, '[]', NULL, NULL, '2022-10-04 09:10:00', '2026-12-01 15:52:34.830643', NULL, '3222406343ca2a671a3e8f797e0eb40623eab1b1693ae26c7d1d7cdb20eac672');
INSERT INTO public.item VALUES (3, 'upgrade', 'dprk-3', 'https://news.example.org/dprk-3', 'US and South Korea hold drills after North Korea missile launch', 'The allies staged air drills in response to the missile launch by North Korea.', '', NULL, '[]', NULL, NULL, '2022-10-05 02:00:00', '2026-12-01 15:52:34.830643', NULL, 'daeccc7b38a3ab99cb232c97d5df18609784e6ea9aaad6bc7c3db6304442e52f');
INSERT INTO public.item VALUES (4, 'upgrade', 'other-1', 'https://news.example.org/other-1', 'Grain ships leave Odesa under corridor deal', 'Three ships carrying grain left the port on Wednesday.', '', NULL, '[]', NULL, NULL, '2022-10-05 05:00:00', '2026-12-01 15:52:34.830643', NULL, '24ed2eb094050437bc06648d0ba2d6907fd0b45d05af8fa5d0a3934e776f5c45');


--
-- Data for Name: rulestate; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rulestate VALUES ('dprk-missile', '6a80a213a52b069dcc491cccb1fe8d5287b4ab94637eb64a758c8c3c49f2d52d', '2026-12-01 15:52:34.790904', false);
INSERT INTO public.rulestate VALUES ('grain', 'e09c6c4ac33636734cef2be19dbfd1604016d22d22724076d6aef3e3e79b54a3', '2026-12-01 15:52:34.790904', false);


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_version VALUES (1);


--
-- Name: delivery_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.delivery_id_seq', 8, true);


--
-- Name: item_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.item_id_seq', 4, true);


--
-- Name: schema_version_version_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.schema_version_version_seq', 1, false);


--
-- Name: alert alert_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert
    ADD CONSTRAINT alert_pkey PRIMARY KEY (id);


--
-- Name: delivery delivery_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.delivery
    ADD CONSTRAINT delivery_pkey PRIMARY KEY (id);


--
-- Name: feed feed_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.feed
    ADD CONSTRAINT feed_pkey PRIMARY KEY (id);


--
-- Name: item item_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.item
    ADD CONSTRAINT item_pkey PRIMARY KEY (id);


--
-- Name: rulestate rulestate_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rulestate
    ADD CONSTRAINT rulestate_pkey PRIMARY KEY (rule_id);


--
-- Name: schema_version schema_version_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_version
    ADD CONSTRAINT schema_version_pkey PRIMARY KEY (version);


--
-- Name: alert uq_alert_rule_hash; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert
    ADD CONSTRAINT uq_alert_rule_hash UNIQUE (rule_id, story_hash);


--
-- Name: alert uq_alert_rule_item; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert
    ADD CONSTRAINT uq_alert_rule_item UNIQUE (rule_id, item_id);


--
-- Name: alert uq_alert_rule_url; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert
    ADD CONSTRAINT uq_alert_rule_url UNIQUE (rule_id, story_url);


--
-- Name: delivery uq_delivery_alert_ch; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.delivery
    ADD CONSTRAINT uq_delivery_alert_ch UNIQUE (alert_id, channel);


--
-- Name: item uq_item_feed_guid; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.item
    ADD CONSTRAINT uq_item_feed_guid UNIQUE (feed_id, guid);


--
-- Name: ix_alert_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_created_at ON public.alert USING btree (created_at);


--
-- Name: ix_alert_item_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_item_id ON public.alert USING btree (item_id);


--
-- Name: ix_alert_rule_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_alert_rule_id ON public.alert USING btree (rule_id);


--
-- Name: ix_delivery_alert_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_delivery_alert_id ON public.delivery USING btree (alert_id);


--
-- Name: ix_delivery_digest_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_delivery_digest_id ON public.delivery USING btree (digest_id);


--
-- Name: ix_delivery_next_attempt_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_delivery_next_attempt_at ON public.delivery USING btree (next_attempt_at);


--
-- Name: ix_delivery_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_delivery_status ON public.delivery USING btree (status);


--
-- Name: ix_feed_next_due_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_feed_next_due_at ON public.feed USING btree (next_due_at);


--
-- Name: ix_item_content_hash; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_item_content_hash ON public.item USING btree (content_hash);


--
-- Name: ix_item_feed_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_item_feed_id ON public.item USING btree (feed_id);


--
-- Name: ix_item_first_seen_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_item_first_seen_at ON public.item USING btree (first_seen_at);


--
-- Name: ix_item_published_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_item_published_at ON public.item USING btree (published_at);


--
-- Name: alert alert_item_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert
    ADD CONSTRAINT alert_item_id_fkey FOREIGN KEY (item_id) REFERENCES public.item(id);


--
-- Name: delivery delivery_alert_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.delivery
    ADD CONSTRAINT delivery_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES public.alert(id);


--
-- PostgreSQL database dump complete
--

\unrestrict E0TccNMh25XL2lmPQtSKy0eC7SGQ6cGOCvDo3EuQFTBGY0XFlUIyHb2steO9ALB

