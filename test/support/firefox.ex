defmodule H2Flow.Test.Firefox do
  @moduledoc false
  # Headless Firefox ESR for the interop suite, driven through Marionette, its own remote
  # protocol: a TCP socket on localhost carrying "length:json" messages, commands
  # [0, id, name, params] answered by [1, id, error, result]. Nothing but Debian's firefox-esr
  # and certutil (libnss3-tools) is needed: no geckodriver, no download.
  #
  # Each instance has a fresh profile in a directory of its own; a CA given as `:ca` (a PEM
  # file) is imported into the profile's NSS database with certutil, trusted for TLS servers,
  # so that Firefox really validates the server's certificate (no exception, no
  # acceptInsecureCerts). Marionette listens on a port the system picks (marionette.port 0),
  # which Firefox writes to MarionetteActivePort in the profile.
  #
  # The process owns the browser; start it with start_supervised!/1 so that the ExUnit
  # supervisor stops it, and kills Firefox's whole process group, even when a test fails.

  use GenServer

  alias H2Flow.Test.JSON

  @executable "/usr/bin/firefox-esr"
  @startup_timeout 60_000

  # On top of what Marionette itself sets (remote.prefs.recommended): no HTTP/3 (the page talks
  # HTTP/2 over TCP), no first-run pages, updates, telemetry or remote settings traffic.
  @prefs [
    {"marionette.port", 0},
    {"network.http.http3.enable", false},
    {"browser.shell.checkDefaultBrowser", false},
    {"browser.startup.homepage_override.mstone", "ignore"},
    {"browser.aboutwelcome.enabled", false},
    {"datareporting.policy.dataSubmissionEnabled", false},
    {"datareporting.healthreport.uploadEnabled", false},
    {"toolkit.telemetry.reportingpolicy.firstRun", false},
    {"app.update.disabledForTesting", true},
    {"app.normandy.enabled", false},
    {"services.settings.server", "http://127.0.0.1:9/"},
    {"network.captive-portal-service.enabled", false},
    {"network.connectivity-service.enabled", false},
    {"security.enterprise_roots.enabled", false}
  ]

  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @doc """
  Starts Firefox with a new session. Options: `:ca` (a PEM file whose certificates the profile
  trusts as TLS server CAs).
  """
  def start_link(opts \\ []),
    do: GenServer.start_link(__MODULE__, opts, timeout: @startup_timeout + 5_000)

  @doc """
  Sends a Marionette command and returns `{:ok, result}` or `{:error, error}`; exits when no
  answer comes within `timeout` ms.
  """
  def command(browser, name, params \\ %{}, timeout \\ 10_000) do
    GenServer.call(browser, {:command, name, params}, timeout)
  end

  @doc "Like `command/4`, but returns the result and raises on an error answer."
  def command!(browser, name, params \\ %{}, timeout \\ 10_000) do
    case command(browser, name, params, timeout) do
      {:ok, result} -> result
      {:error, error} -> raise "#{name} failed: #{inspect(error)}\n#{log(browser)}"
    end
  end

  @doc "The tail of Firefox's own output, for failure messages."
  def log(browser) do
    path = GenServer.call(browser, :log_path)

    case File.read(path) do
      {:ok, text} ->
        "Firefox's output (#{path}), last lines:\n" <> H2Flow.Test.Interop.tail(text, 30)

      {:error, _} ->
        "Firefox wrote no output."
    end
  catch
    :exit, _ -> "Firefox has exited (its output went with its directory)."
  end

  # --- server ----------------------------------------------------------------------------

  @impl true
  def init(opts) do
    unless File.exists?(@executable) do
      raise "#{@executable} is missing: install Debian's firefox-esr (.ci/run does), or leave " <>
              "these tests out with `mix test --exclude interop`"
    end

    Process.flag(:trap_exit, true)
    dir = Path.join(System.tmp_dir!(), "h2flow-firefox-#{System.unique_integer([:positive])}")
    File.rm_rf!(dir)
    profile = Path.join(dir, "profile")
    File.mkdir_p!(profile)
    log = Path.join(dir, "firefox.log")
    File.write!(Path.join(profile, "user.js"), Enum.map(@prefs, &pref_line/1))
    if opts[:ca], do: trust_ca!(profile, opts[:ca])

    script = ~s(exec "$0" "$@" </dev/null >"$H2FLOW_FIREFOX_LOG" 2>&1)

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        :exit_status,
        args: [
          "-c",
          script,
          @executable,
          "--headless",
          "--marionette",
          "--no-remote",
          "--profile",
          profile
        ],
        env: [
          {~c"H2FLOW_FIREFOX_LOG", String.to_charlist(log)},
          {~c"HOME", String.to_charlist(dir)},
          {~c"XDG_CACHE_HOME", String.to_charlist(Path.join(dir, "cache"))},
          {~c"MOZ_CRASHREPORTER_DISABLE", ~c"1"}
        ]
      ])

    # Port programs lead their own process group: Firefox and its content processes.
    {:os_pid, os_pid} = Port.info(port, :os_pid)

    state = %{
      port: port,
      os_pid: os_pid,
      dir: dir,
      log: log,
      socket: nil,
      buffer: "",
      next_id: 1,
      pending: %{}
    }

    case connect(profile, System.monotonic_time(:millisecond) + @startup_timeout) do
      {:ok, socket} ->
        :ok = :inet.setopts(socket, active: true)
        {:ok, %{state | socket: socket, next_id: 2}}

      {:error, reason} ->
        output = File.read(log) |> elem(1) |> to_string()
        kill_all(state)
        File.rm_rf(dir)
        {:stop, {:firefox_did_not_start, reason, H2Flow.Test.Interop.tail(output, 20)}}
    end
  end

  defp pref_line({name, value}) when is_binary(value), do: ~s[user_pref("#{name}", "#{value}");\n]
  defp pref_line({name, value}), do: ~s[user_pref("#{name}", #{value});\n]

  # A new NSS database in the profile (Firefox reads cert9.db), with the CA trusted for TLS
  # servers ("C,,": a CA trusted to issue server certificates).
  defp trust_ca!(profile, ca_file) do
    certutil =
      System.find_executable("certutil") ||
        raise "certutil is missing: install Debian's libnss3-tools"

    db = "sql:" <> profile
    {_, 0} = System.cmd(certutil, ["-N", "-d", db, "--empty-password"], stderr_to_stdout: true)

    {out, status} =
      System.cmd(certutil, ["-A", "-d", db, "-n", "h2flow test CA", "-t", "C,,", "-i", ca_file],
        stderr_to_stdout: true
      )

    status == 0 || raise "certutil -A failed: #{out}"
  end

  # Waits (bounded) for Firefox to write its Marionette port, then connects and reads the
  # greeting.
  defp connect(profile, deadline) do
    file = Path.join(profile, "MarionetteActivePort")

    with {:ok, text} <- File.read(file),
         {port, ""} <- Integer.parse(String.trim(text)),
         {:ok, socket} <- :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false], 5_000),
         {:ok, %{"marionetteProtocol" => 3}} <- recv_message(socket, "", 10_000) do
      new_session(socket)
    else
      _ ->
        if System.monotonic_time(:millisecond) > deadline do
          {:error, :no_marionette}
        else
          Process.sleep(100)
          connect(profile, deadline)
        end
    end
  end

  # A WebDriver session that does NOT accept insecure certificates: a certificate NSS does not
  # validate fails the navigation.
  defp new_session(socket) do
    send_command(socket, 1, "WebDriver:NewSession", %{
      capabilities: %{alwaysMatch: %{acceptInsecureCerts: false}}
    })

    case recv_message(socket, "", 30_000) do
      {:ok, [1, 1, nil, _capabilities]} -> {:ok, socket}
      {:ok, [1, 1, error, _]} -> {:error, {:new_session, error}}
      error -> error
    end
  end

  defp recv_message(socket, buffer, timeout) do
    case parse(buffer) do
      {:ok, message, _rest} ->
        {:ok, message}

      :more ->
        case :gen_tcp.recv(socket, 0, timeout) do
          {:ok, data} -> recv_message(socket, buffer <> data, timeout)
          error -> error
        end
    end
  end

  # "length:json", length in bytes.
  defp parse(buffer) do
    with [len, rest] <- :binary.split(buffer, ":"),
         {n, ""} <- Integer.parse(len),
         <<json::binary-size(n), rest::binary>> <- rest do
      {:ok, JSON.decode!(json), rest}
    else
      _ -> :more
    end
  end

  @impl true
  def handle_call({:command, name, params}, from, state) do
    send_command(state.socket, state.next_id, name, params)
    pending = Map.put(state.pending, state.next_id, from)
    {:noreply, %{state | next_id: state.next_id + 1, pending: pending}}
  end

  def handle_call(:log_path, _from, state), do: {:reply, state.log, state}

  defp send_command(socket, id, name, params) do
    json = JSON.encode!([0, id, name, params])
    :ok = :gen_tcp.send(socket, [Integer.to_string(byte_size(json)), ":", json])
  end

  @impl true
  def handle_info({:tcp, socket, data}, %{socket: socket} = state) do
    {:noreply, dispatch(%{state | buffer: state.buffer <> data})}
  end

  def handle_info({:tcp_closed, socket}, %{socket: socket} = state),
    do: {:stop, :marionette_closed, state}

  def handle_info({port, {:exit_status, status}}, %{port: port} = state),
    do: {:stop, {:firefox_exited, status}, state}

  # Ports of commands run meanwhile (System.cmd) exit too.
  def handle_info({:EXIT, port, _reason}, state) when is_port(port) and port != state.port,
    do: {:noreply, state}

  def handle_info({:EXIT, _pid, reason}, state), do: {:stop, reason, state}

  defp dispatch(state) do
    case parse(state.buffer) do
      {:ok, [1, id, error, result], rest} ->
        state = %{state | buffer: rest}

        case Map.pop(state.pending, id) do
          {nil, _} ->
            dispatch(state)

          {from, pending} ->
            GenServer.reply(from, if(error, do: {:error, error}, else: {:ok, result}))
            dispatch(%{state | pending: pending})
        end

      {:ok, _other, rest} ->
        dispatch(%{state | buffer: rest})

      :more ->
        state
    end
  end

  @impl true
  def terminate(_reason, state) do
    if state.socket, do: :gen_tcp.close(state.socket)

    try do
      Port.close(state.port)
    rescue
      ArgumentError -> :ok
    end

    kill_all(state)
    File.rm_rf(state.dir)
    :ok
  end

  defp kill_all(state), do: H2Flow.Test.OSProcess.kill_all(state.os_pid, state.dir, "Firefox")
end
