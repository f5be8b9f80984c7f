defmodule H2Flow.PhoenixAdapter do
  # Owns the mapping from a Phoenix endpoint's http:/https: configuration to h2flow servers.
  @moduledoc """
  Serves a Phoenix endpoint with h2flow: `adapter: H2Flow.PhoenixAdapter` in the endpoint's
  configuration (Phoenix 1.7; h2flow does not depend on Phoenix).

      config :my_app, MyAppWeb.Endpoint,
        adapter: H2Flow.PhoenixAdapter,
        http: [ip: {127, 0, 0, 1}, port: 4000],
        https: [port: 4443, certfile: "priv/cert/selfsigned.pem", keyfile: "priv/cert/selfsigned_key.pem"]

  Each of `http:` and `https:` that is set starts one `H2Flow` server running the endpoint as
  its plug (`H2Flow`, option `:plug`): HTTP/1.1 and h2c for `http:`, HTTP/1.1 and h2 over TLS
  (ALPN) for `https:`. WebSockets are not served yet (h2flow implements neither HTTP/1.1's
  Upgrade to them nor RFC 8441); Phoenix's long-polling transport works.

  What the keyword lists may hold:

    * `:port` (default 4000 for `http:`, 4040 for `https:`, as with Cowboy): an integer, a
      string, or `{:system, "ENV_VAR"}`.
    * `:ip`, and any other `H2Flow` option (limits, windows, timeouts, `:acceptors`, ...).
    * For `https:`, the `:ssl` options of the certificate: `:certfile`, `:keyfile`,
      `:cacertfile`, `:dhfile` (paths relative to the application's directory, as with
      `Plug.SSL`), `:cert`, `:key`, `:cacerts`, `:password`, `:verify`, `:verify_fun`,
      `:fail_if_no_peer_cert`, `:depth`, `:sni_fun`, `:sni_hosts`, `:certs_keys`; or `tls:`
      with them. `:cipher_suite` is ignored: h2flow chooses TLS versions and ciphers for HTTP/2.

  Options of other servers (`:transport_options`, `:thousand_island_options`, ...) raise, like
  every unknown option of `H2Flow`.

  Stopping the endpoint (or its application) drains its servers like `H2Flow.stop/1`: no new
  connections, GOAWAY to every client, and in-flight requests get up to `:shutdown_timeout`
  (15 s by default) to finish.
  """

  require Logger

  @tls_keys ~w(certfile keyfile cacertfile dhfile cert key cacerts password verify verify_fun
               fail_if_no_peer_cert depth sni_fun sni_hosts certs_keys)a
  @tls_files ~w(certfile keyfile cacertfile dhfile)a

  @doc false
  # Phoenix.Endpoint's adapter contract: the child specs of the endpoint's servers.
  @spec child_specs(module(), keyword()) :: [Supervisor.child_spec()]
  def child_specs(endpoint, config) do
    otp_app = Keyword.fetch!(config, :otp_app)
    plug = plug(endpoint, config[:code_reloader])

    for {scheme, port} <- [http: 4000, https: 4040], opts = config[scheme] do
      opts = [plug: plug] ++ h2flow_options(scheme, opts, port, otp_app)

      # Stopping the endpoint drains its servers as H2Flow.stop/1 does: the child spec's
      # :shutdown waits for it.
      %{
        id: {endpoint, scheme},
        start: {__MODULE__, :start_link, [scheme, endpoint, opts]},
        type: :supervisor,
        shutdown: H2Flow.child_spec(opts).shutdown
      }
    end
  end

  @doc false
  def start_link(scheme, endpoint, opts) do
    case H2Flow.start_link(opts) do
      {:ok, pid} ->
        {ip, port} = H2Flow.address(pid)

        Logger.info(
          "Running #{inspect(endpoint)} with h2flow at #{:inet.ntoa(ip)}:#{port} (#{scheme})"
        )

        {:ok, pid}

      error ->
        error
    end
  end

  @doc """
  The address and port of the endpoint's server for `scheme` (`:http` or `:https`), as
  `c:Phoenix.Endpoint.server_info/1` wants them.
  """
  @spec server_info(module(), :http | :https) ::
          {:ok, {:inet.ip_address(), :inet.port_number()}} | {:error, term()}
  def server_info(endpoint, scheme) do
    case Enum.find(
           Supervisor.which_children(endpoint),
           &match?({{^endpoint, ^scheme}, _, _, _}, &1)
         ) do
      {_, pid, _, _} when is_pid(pid) -> {:ok, H2Flow.address(pid)}
      _ -> {:error, :no_server_found}
    end
  end

  @doc """
  The `H2Flow` options for an endpoint's `http:` or `https:` configuration (see the module
  doc).

      iex> H2Flow.PhoenixAdapter.h2flow_options(:http, [ip: {127, 0, 0, 1}, port: "4001"], 4000, nil)
      [port: 4001, ip: {127, 0, 0, 1}]
  """
  @spec h2flow_options(:http | :https, keyword(), :inet.port_number(), atom()) :: keyword()
  def h2flow_options(scheme, opts, default_port, otp_app) do
    port = opts |> Keyword.get(:port, default_port) |> port!(scheme)
    opts = Keyword.drop(opts, [:port, :otp_app, :cipher_suite])

    case scheme do
      :http ->
        [port: port] ++ opts

      :https ->
        {tls, opts} = Keyword.split(opts, @tls_keys)
        {given, opts} = Keyword.pop(opts, :tls, [])
        tls = Enum.map(tls ++ given, &tls_file(&1, otp_app))
        [port: port, transport: :tls, tls: tls] ++ opts
    end
  end

  defp port!({:system, var}, scheme), do: port!(System.get_env(var), scheme)
  defp port!(port, _scheme) when is_integer(port), do: port

  defp port!(port, scheme) when is_binary(port) do
    case Integer.parse(port) do
      {n, ""} -> n
      _ -> raise ArgumentError, "#{scheme}: :port must be an integer, got: #{inspect(port)}"
    end
  end

  defp port!(port, scheme),
    do: raise(ArgumentError, "#{scheme}: :port must be an integer, got: #{inspect(port)}")

  # As Plug.SSL: a relative path is relative to the application's directory.
  defp tls_file({key, path}, otp_app) when key in @tls_files and otp_app != nil do
    path = to_string(path)

    if Path.type(path) == :absolute,
      do: {key, path},
      else: {key, Path.expand(path, Application.app_dir(otp_app))}
  end

  defp tls_file(option, _otp_app), do: option

  # With the code reloader, requests go through Phoenix's reloading plug first (as Bandit's
  # and Cowboy's adapters do).
  defp plug(endpoint, code_reloader?) do
    reloader = Phoenix.Endpoint.SyncCodeReloadPlug

    if code_reloader? && Code.ensure_loaded?(reloader) && function_exported?(reloader, :call, 2),
      do: {reloader, {endpoint, []}},
      else: endpoint
  end
end
