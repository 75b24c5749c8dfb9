-- A role per Flink job, made by the orchestrator through these functions (it cannot
-- create roles itself). PostgresService applies it with the orchestrator role in place
-- of the placeholder in braces.


create schema if not exists kappa_grants;
revoke all on schema kappa_grants from public;
grant usage on schema kappa_grants to "{orchestrator}";

-- p_password: the password the orchestrator derived from the job key (the job's sinks
-- derive it too, so it is in no SQL text); null: a random one, returned
drop function if exists kappa_grants.job_role(text, text[], text[], text, int);
create or replace function kappa_grants.job_role(
    p_role text, p_writes text[], p_reads text[], p_pipeline text, p_version int, p_password text
) returns text language plpgsql security definer set search_path = pg_catalog as $fn$
declare
    secret text := coalesce(
        p_password, replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')
    );
    t text;
    parts text[];
begin
    if not pg_has_role(session_user, '{orchestrator}', 'member') then
        raise exception 'only the orchestrator ({orchestrator}) makes job roles';
    end if;
    if p_role !~ '^kappa_job_[a-z0-9_]{1,50}$' then
        raise exception 'not a job role name: %', p_role;
    end if;
    if exists (select 1 from pg_roles where rolname = p_role) then
        execute format('alter role %I login noinherit password %L', p_role, secret);
    else
        execute format('create role %I login noinherit password %L', p_role, secret);
    end if;
    execute format('grant connect on database %I to %I', current_database(), p_role);
    foreach t in array p_writes || p_reads loop
        parts := string_to_array(t, '.');
        if array_length(parts, 1) <> 2 or parts[1] in ('kappa_registry', 'kappa_grants', 'kappa_counts',
                'information_schema') or parts[1] like 'pg\_%' then
            raise exception 'not a table a job may use: %', t;
        end if;
        if t = any(p_writes) and not exists (
            select 1 from pg_tables where schemaname = parts[1] and tablename = parts[2]
            and tableowner = '{orchestrator}'
        ) then
            raise exception 'a job writes only tables the orchestrator owns: %', t;
        end if;
        if not has_table_privilege(session_user, format('%I.%I', parts[1], parts[2]), 'select') then
            raise exception 'the orchestrator may not read %', t;
        end if;
        execute format('grant usage on schema %I to %I', parts[1], p_role);
        execute format(
            'grant %s on %I.%I to %I',
            case when t = any(p_writes) then 'select, insert, update, delete' else 'select' end,
            parts[1], parts[2], p_role
        );
    end loop;
    if p_pipeline is not null and to_regclass('kappa_counts.input_counts') is not null then
        execute 'alter table kappa_counts.input_counts enable row level security';
        execute format('grant usage on schema kappa_counts to %I', p_role);
        execute format('grant select, insert, update on kappa_counts.input_counts to %I', p_role);
        execute format('drop policy if exists %I on kappa_counts.input_counts', p_role);
        execute format(
            'create policy %I on kappa_counts.input_counts for all to %I '
            || 'using (pipeline = %L and version = %s) with check (pipeline = %L and version = %s)',
            p_role, p_role, p_pipeline, p_version, p_pipeline, p_version
        );
    end if;
    return secret;
end
$fn$;

create or replace function kappa_grants.drop_job_role(p_role text)
returns void language plpgsql security definer set search_path = pg_catalog as $fn$
begin
    if not pg_has_role(session_user, '{orchestrator}', 'member') then
        raise exception 'only the orchestrator ({orchestrator}) drops job roles';
    end if;
    if p_role !~ '^kappa_job_[a-z0-9_]{1,50}$' then
        raise exception 'not a job role name: %', p_role;
    end if;
    if not exists (select 1 from pg_roles where rolname = p_role) then
        return;
    end if;
    if to_regclass('kappa_counts.input_counts') is not null then
        execute format('drop policy if exists %I on kappa_counts.input_counts', p_role);
    end if;
    execute format('drop owned by %I', p_role);
    execute format('revoke connect on database %I from %I', current_database(), p_role);
    if not exists (
        select 1 from pg_shdepend d join pg_roles r on r.oid = d.refobjid where r.rolname = p_role
    ) then
        execute format('drop role %I', p_role);
    end if;
end
$fn$;

revoke all on function kappa_grants.job_role(text, text[], text[], text, int, text) from public;
revoke all on function kappa_grants.drop_job_role(text) from public;
grant execute on function kappa_grants.job_role(text, text[], text[], text, int, text) to "{orchestrator}";
grant execute on function kappa_grants.drop_job_role(text) to "{orchestrator}";
