-- A LÖVE game that generates its sprite sheet at start-up with lediflow, through LuaJIT's FFI.
--
--     love examples/love                      (from the repository root)
--
-- Environment (all optional): LDF_LIBRARY (the shared library), LDF_HEADER (lediflow.h),
-- LDF_MODEL (a model file), LDF_SEED, LDF_COUNT, LDF_STEPS. With LDF_HEADLESS=1 LDF_OUT=DIR it
-- writes DIR/sheet.png and quits (exit status 1 with the library's message on failure);
-- LDF_SCREENSHOT=FILE saves the first frame drawn to FILE (PNG) and quits.

local ffi = require("ffi")

local source = love.filesystem.getSource()
local root = source .. "/../.."
local lib_name = ffi.os == "OSX" and "liblediflow.dylib" or (ffi.os == "Windows" and "lediflow.dll" or "liblediflow.so")

local function readable(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

-- The C declarations come from the library's own header: ffi.cdef takes C declarations, so the
-- preprocessor lines (and the C++-only parts) are left out; its numeric #defines (status codes,
-- devices, limits) come back as a table.
local function declare(path)
    local f = assert(io.open(path, "r"), "cannot read " .. path .. " (set LDF_HEADER)")
    local out, skipping, defines = {}, 0, {}
    for line in f:lines() do
        if skipping > 0 then
            if line:match("^%s*#%s*if") then skipping = skipping + 1 end
            if line:match("^%s*#%s*endif") then skipping = skipping - 1 end
        elseif line:match("^%s*#%s*if") and line:match("__cplusplus") then
            skipping = 1
        elseif line:match("^%s*#") then
            local name, value = line:match("^%s*#%s*define%s+(LDF_[%w_]+)%s+(%-?%d+)%s*$")
            if name then defines[name] = tonumber(value) end
        else
            out[#out + 1] = line
        end
    end
    f:close()
    ffi.cdef(table.concat(out, "\n"))
    return defines
end

local function find_library()
    local env = os.getenv("LDF_LIBRARY")
    if env then return env end
    for _, profile in ipairs({ "release", "debug" }) do
        local p = root .. "/target/" .. profile .. "/" .. lib_name
        if readable(p) then return p end
    end
    return "lediflow" -- the system's search path
end

local LDF = declare(os.getenv("LDF_HEADER") or (root .. "/include/lediflow.h"))
local ldf = ffi.load(find_library())

local function check(status, what)
    if status ~= LDF.LDF_OK then
        error(what .. ": " .. ffi.string(ldf.ldf_status_str(status)) .. ": " .. ffi.string(ldf.ldf_last_error()), 2)
    end
end

-- Loads the model once; returns it with its info.
local function load_model(path)
    local out = ffi.new("LdfModel *[1]")
    check(ldf.ldf_model_load(path, LDF.LDF_DEVICE_CPU, out), "loading " .. path)
    local model = ffi.gc(out[0], ldf.ldf_model_free)
    local info = ffi.new("LdfModelInfo")
    info.struct_size = ffi.sizeof(info)
    check(ldf.ldf_model_info(model, info), "model info")
    return model, info
end

-- `count` sprites of (seed, steps) laid out as a sheet of `columns` columns, as ImageData.
local function sprite_sheet(model, info, count, seed, steps, columns, tileable)
    local params = ffi.new("LdfSampleParams")
    check(ldf.ldf_sample_params_init_sized(params, ffi.sizeof(params)), "sample params")
    params.seed, params.steps, params.tileable = seed, steps, tileable and 1 or 0
    local per = tonumber(info.image_bytes)
    local pixels = ffi.new("uint8_t[?]", count * per)
    check(ldf.ldf_sample(model, count, params, pixels, count * per), "sampling")
    local w, h, c = info.width, info.height, info.channels
    local rows = math.ceil(count / columns)
    local sheet = love.image.newImageData(columns * w, rows * h)
    local dst = ffi.cast("uint8_t *", sheet:getFFIPointer())
    local stride = columns * w * 4
    for i = 0, count - 1 do
        local ox, oy = (i % columns) * w, math.floor(i / columns) * h
        for y = 0, h - 1 do
            for x = 0, w - 1 do
                local s = i * per + (y * w + x) * c
                local d = (oy + y) * stride + (ox + x) * 4
                if c == 4 then
                    dst[d], dst[d + 1], dst[d + 2], dst[d + 3] = pixels[s], pixels[s + 1], pixels[s + 2], pixels[s + 3]
                elseif c == 3 then
                    dst[d], dst[d + 1], dst[d + 2], dst[d + 3] = pixels[s], pixels[s + 1], pixels[s + 2], 255
                else
                    dst[d], dst[d + 1], dst[d + 2], dst[d + 3] = pixels[s], pixels[s], pixels[s], 255
                end
            end
        end
    end
    return sheet
end

local settings = {
    model = os.getenv("LDF_MODEL") or (root .. "/models/dcss-small-ledi.safetensors"),
    seed = tonumber(os.getenv("LDF_SEED") or "0"),
    count = tonumber(os.getenv("LDF_COUNT") or "32"),
    steps = tonumber(os.getenv("LDF_STEPS") or "4"),
    columns = 8,
    tileable = false,
}
local model, info, image, status

local function regenerate()
    local t = love.timer.getTime()
    local sheet = sprite_sheet(model, info, settings.count, settings.seed, settings.steps, settings.columns, settings.tileable)
    status = string.format("seed %d, %d sprites, %d steps%s: %.0f ms", settings.seed, settings.count, settings.steps,
        settings.tileable and ", tileable" or "", (love.timer.getTime() - t) * 1000)
    return sheet
end

function love.load()
    if os.getenv("LDF_HEADLESS") == "1" then
        local ok, err = pcall(function()
            model, info = load_model(settings.model)
            local out = assert(os.getenv("LDF_OUT"), "LDF_HEADLESS=1 needs LDF_OUT=DIR")
            local png = regenerate():encode("png"):getString()
            local f = assert(io.open(out .. "/sheet.png", "wb"))
            f:write(png)
            f:close()
            print("wrote " .. out .. "/sheet.png: " .. status)
        end)
        if not ok then
            io.stderr:write(tostring(err) .. "\n")
            love.event.quit(1)
        else
            love.event.quit(0)
        end
        return
    end
    model, info = load_model(settings.model)
    love.graphics.setDefaultFilter("nearest", "nearest")
    image = love.graphics.newImage(regenerate())
end

function love.keypressed(key)
    if key == "space" or key == "t" then
        if key == "space" then settings.seed = settings.seed + 1 else settings.tileable = not settings.tileable end
        image = love.graphics.newImage(regenerate())
    elseif key == "escape" then
        love.event.quit()
    end
end

local screenshot = os.getenv("LDF_SCREENSHOT")
local quit_after_frame = false

function love.update()
    if quit_after_frame and not screenshot then
        quit_after_frame = false
        love.event.quit(0)
    end
end

function love.draw()
    if not image then return end
    love.graphics.clear(0.35, 0.35, 0.4)
    love.graphics.draw(image, 0, 0, 0, 3, 3)
    love.graphics.print(status, 4, love.graphics.getHeight() - 18)
    if screenshot then
        local path = screenshot
        love.graphics.captureScreenshot(function(shot)
            local f = assert(io.open(path, "wb"))
            f:write(shot:encode("png"):getString())
            f:close()
            print("wrote " .. path)
        end)
        screenshot = nil
        quit_after_frame = true
    end
end
